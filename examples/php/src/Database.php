<?php

declare(strict_types=1);

namespace InventorySyncExample;

use PDO;

final class Database
{
    /**
     * A connection configured by the libpq environment variables (PGHOST, PGPORT, PGUSER,
     * PGDATABASE, PGPASSWORD, PGOPTIONS, ...): pdo_pgsql hands the DSN after "pgsql:" to libpq,
     * which fills in everything the DSN leaves out from the environment.
     */
    public static function connect(): PDO
    {
        return new PDO('pgsql:', null, null, [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
            PDO::ATTR_EMULATE_PREPARES => false, // server-side prepared statements, bound values
            PDO::ATTR_TIMEOUT => 5,              // libpq connect_timeout, seconds
        ]);
    }
}
