<?php

declare(strict_types=1);

// What Composer's PSR-4 autoloader would do for this one namespace (Composer's registry,
// Packagist, is not reachable where this example was written).
spl_autoload_register(static function (string $class): void {
    $prefix = 'InventorySyncExample\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
