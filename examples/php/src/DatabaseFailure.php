<?php

declare(strict_types=1);

namespace InventorySyncExample;

use PDO;
use PDOException;

/**
 * A failure reported by PostgreSQL, with its SQLSTATE: a call that raised an error, a lost or
 * refused connection, or a change that the database answered `{"status": "error"}` for a reason
 * that is not the change's fault (a serialization failure inside sync_push, say).
 */
final class DatabaseFailure extends \RuntimeException
{
    public function __construct(
        /** Five characters, or null when the driver could not tell (a connection lost mid-call). */
        public readonly ?string $sqlstate,
        /** The primary message, without "ERROR:" and without DETAIL/HINT lines. */
        string $message,
        public readonly bool $connectionLost = false,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }

    public static function fromPdo(PDOException $e, ?PDO $pdo): self
    {
        // errorInfo[0] is the SQLSTATE. getCode() is not always: PDO's constructor sets it to the
        // driver's int error code (7) and only errorInfo[0] holds "08006".
        $sqlstate = $e->errorInfo[0] ?? null;
        if (!is_string($sqlstate) || strlen($sqlstate) !== 5) {
            $sqlstate = preg_match('/^SQLSTATE\[([0-9A-Z]{5})\]/', $e->getMessage(), $m) ? $m[1] : null;
        }
        $text = $e->errorInfo[2] ?? $e->getMessage();
        $message = preg_replace('/^(ERROR|FATAL|PANIC):\s+/', '', strtok((string) $text, "\n") ?: '');

        // libpq reports a connection lost during a call without a SQLSTATE ("HY000" in PDO), so
        // ask the connection itself. A failure to connect is class 08.
        $lost = $sqlstate !== null && str_starts_with($sqlstate, '08');
        if (!$lost && $pdo !== null && ($sqlstate === null || $sqlstate === 'HY000')) {
            try {
                $lost = $pdo->getAttribute(PDO::ATTR_CONNECTION_STATUS) === 'Bad connection.';
            } catch (\Throwable) {
                $lost = true;
            }
        }
        if ($sqlstate === 'HY000') {
            $sqlstate = null; // PDO's "general error", not PostgreSQL's
        }
        return new self($sqlstate, $message, $lost, $e);
    }
}
