<?php

declare(strict_types=1);

namespace InventorySyncExample;

/** An HTTP answer: status, headers and a JSON body (as text). */
final class Response
{
    /** @param array<string, string> $headers */
    public function __construct(
        public readonly int $status,
        public readonly string $body,
        public readonly array $headers = [],
    ) {
    }

    /** A body that already is JSON text, such as an answer of the database passed through. */
    public static function json(int $status, string $json, array $headers = []): self
    {
        return new self($status, $json, $headers);
    }

    /** `{"error": message, ...extra}`. */
    public static function error(int $status, string $message, array $extra = [], array $headers = []): self
    {
        $body = json_encode(
            ['error' => $message] + $extra,
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE | JSON_THROW_ON_ERROR,
        );
        return new self($status, $body, $headers);
    }

    private const REASONS = [
        200 => 'OK', 400 => 'Bad Request', 404 => 'Not Found', 405 => 'Method Not Allowed',
        409 => 'Conflict', 410 => 'Gone', 422 => 'Unprocessable Content',
        500 => 'Internal Server Error', 503 => 'Service Unavailable',
    ];

    public function send(): void
    {
        // An explicit status line: PHP 8.2's built-in server knows no reason phrase for 422.
        $protocol = $_SERVER['SERVER_PROTOCOL'] ?? 'HTTP/1.1';
        header(sprintf('%s %d %s', $protocol, $this->status, self::REASONS[$this->status] ?? ''), true, $this->status);
        header_remove('X-Powered-By');
        header('Content-Type: application/json');
        header('Cache-Control: no-store');
        foreach ($this->headers as $name => $value) {
            header("$name: $value");
        }
        echo $this->body;
    }
}
