<?php

declare(strict_types=1);

require __DIR__ . '/Support.php';
require __DIR__ . '/SyncTestCase.php';

register_shutdown_function([InventorySyncExample\Tests\SyncTestCase::class, 'stopOwnServer']);
