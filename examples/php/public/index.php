<?php

// The front controller, and the router script of PHP's built-in server:
//     php -S 127.0.0.1:8080 -t public public/index.php
// Every request comes here; nothing is served as a static file.

declare(strict_types=1);

use InventorySyncExample\Database;
use InventorySyncExample\Response;
use InventorySyncExample\SyncEndpoint;

require __DIR__ . '/../src/autoload.php';

// Errors go to the server's log (stderr), never into an answer.
ini_set('display_errors', '0');
ini_set('log_errors', '1');
set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
    throw new ErrorException($message, 0, $severity, $file, $line);
});

try {
    $endpoint = new SyncEndpoint(static fn (): PDO => Database::connect());
    $response = $endpoint->handle(
        $_SERVER['REQUEST_METHOD'] ?? 'GET',
        $_SERVER['REQUEST_URI'] ?? '/',
        $_GET,
        (string) file_get_contents('php://input'),
    );
} catch (Throwable $e) {
    error_log((string) $e);
    $response = Response::error(500, 'internal error');
}
$response->send();
