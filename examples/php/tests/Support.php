<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

/** An HTTP answer as the client saw it. */
final class HttpResponse
{
    /** @param array<string, string> $headers lower-case names */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    public static function parse(string $raw): self
    {
        [$head, $body] = array_pad(explode("\r\n\r\n", $raw, 2), 2, '');
        return self::fromHeaderLines(explode("\r\n", $head), $body);
    }

    /** @param list<string> $lines the status line, then "Name: value" lines */
    public static function fromHeaderLines(array $lines, string $body): self
    {
        if (!preg_match('#^HTTP/\S+ (\d{3})#', $lines[0] ?? '', $m)) {
            throw new \RuntimeException('no HTTP status line in: ' . implode("\n", $lines));
        }
        $headers = [];
        foreach (array_slice($lines, 1) as $line) {
            if (str_contains($line, ':')) {
                [$name, $value] = explode(':', $line, 2);
                $headers[strtolower(trim($name))] = trim($value);
            }
        }
        return new self((int) $m[1], $headers, $body);
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** The body decoded, objects as associative arrays. */
    public function json(): mixed
    {
        return json_decode($this->body, true, 512, JSON_THROW_ON_ERROR);
    }
}

/** A real HTTP client (PHP's http:// stream wrapper), and one for requests left pending. */
final class Http
{
    public static function request(string $method, string $url, ?string $body = null): HttpResponse
    {
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => $body === null ? '' : "Content-Type: application/json\r\n",
            'content' => $body ?? '',
            'ignore_errors' => true,   // the body of a 4xx/5xx answer too
            'follow_location' => 0,
            'timeout' => 60,
        ]]);
        $answer = @file_get_contents($url, false, $context);
        if ($answer === false) {
            throw new \RuntimeException("no answer from $method $url: " . (error_get_last()['message'] ?? ''));
        }
        // PHP 8.2: the wrapper leaves the answer's header lines in this local variable.
        return HttpResponse::fromHeaderLines($http_response_header, $answer);
    }

    /**
     * Sends a request and returns the open socket without waiting for the answer; read it with
     * finish().
     *
     * @return resource
     */
    public static function start(string $method, string $baseUrl, string $path, string $body)
    {
        $u = parse_url($baseUrl);
        $socket = stream_socket_client("tcp://{$u['host']}:{$u['port']}", $errno, $error, 5);
        if ($socket === false) {
            throw new \RuntimeException("cannot connect to $baseUrl: $error");
        }
        fwrite($socket, "$method $path HTTP/1.0\r\nHost: {$u['host']}:{$u['port']}\r\n"
            . "Content-Type: application/json\r\nContent-Length: " . strlen($body) . "\r\n"
            . "Connection: close\r\n\r\n$body");
        return $socket;
    }

    /** @param resource $socket */
    public static function finish($socket): HttpResponse
    {
        stream_set_timeout($socket, 60);
        $raw = stream_get_contents($socket);
        fclose($socket);
        return HttpResponse::parse((string) $raw);
    }
}

/** The example's server (PHP's built-in server and public/index.php) in a child process. */
final class Server
{
    /** @param resource $process */
    private function __construct(
        public readonly string $url,
        public readonly string $logFile,
        private $process,
    ) {
    }

    /**
     * Starts a server with the test's environment, changed by $env (libpq variables, say).
     *
     * @param array<string, string> $env
     */
    public static function start(array $env = []): self
    {
        $root = dirname(__DIR__);
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($probe, false), ':'), 1);
        fclose($probe);
        $log = tempnam(sys_get_temp_dir(), 'inventory-sync-php-server-');
        $process = proc_open(
            [PHP_BINARY, '-S', "127.0.0.1:$port", '-t', "$root/public", "$root/public/index.php"],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', $log, 'a'], 2 => ['file', $log, 'a']],
            $pipes,
            $root,
            array_merge(getenv(), $env),
        );
        if (!is_resource($process)) {
            throw new \RuntimeException('cannot start php -S');
        }
        $server = new self("http://127.0.0.1:$port", $log, $process);
        $deadline = microtime(true) + 10;
        while (($socket = @fsockopen('127.0.0.1', $port, $errno, $error, 0.2)) === false) {
            if (!proc_get_status($process)['running'] || microtime(true) > $deadline) {
                $server->stop();
                throw new \RuntimeException("php -S did not start:\n" . file_get_contents($log));
            }
            usleep(50_000);
        }
        fclose($socket);
        return $server;
    }

    public function log(): string
    {
        return (string) file_get_contents($this->logFile);
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            proc_terminate($this->process);
            proc_close($this->process);
        }
        @unlink($this->logFile);
    }
}
