<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

use PDO;
use PHPUnit\Framework\TestCase;

/**
 * Each test starts from a fresh extension and a fresh tracked table `products`, in the database
 * of the libpq environment variables, and talks to the example's server over real HTTP: the one
 * test.sh started (SYNC_BASE_URL), or one started here.
 */
abstract class SyncTestCase extends TestCase
{
    protected const U1 = '11111111-1111-1111-1111-111111111111';
    protected const U2 = '22222222-2222-2222-2222-222222222222';
    protected const U3 = '33333333-3333-3333-3333-333333333333';
    protected const U4 = '44444444-4444-4444-4444-444444444444';

    private static ?Server $ownServer = null;

    protected PDO $db;

    /** @var list<Server> servers a test started, stopped after it */
    private array $servers = [];

    public static function baseUrl(): string
    {
        $url = getenv('SYNC_BASE_URL');
        if (is_string($url) && $url !== '') {
            return rtrim($url, '/');
        }
        self::$ownServer ??= Server::start();
        return self::$ownServer->url;
    }

    public static function stopOwnServer(): void
    {
        self::$ownServer?->stop();
        self::$ownServer = null;
    }

    public static function connect(): PDO
    {
        return new PDO('pgsql:', null, null, [
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
        ]);
    }

    protected function setUp(): void
    {
        $this->db = self::connect();
        $this->db->exec(<<<'SQL'
            SET client_min_messages = warning;
            DROP EXTENSION IF EXISTS inventory_sync CASCADE;
            DROP TABLE IF EXISTS public.products;
            DROP FUNCTION IF EXISTS public.php_example_fail() CASCADE;
            CREATE EXTENSION inventory_sync;
            CREATE TABLE public.products (
                id         uuid PRIMARY KEY,
                name       text NOT NULL,
                stock      integer NOT NULL DEFAULT 0,
                updated_at timestamptz NOT NULL
            );
            SELECT inventory_sync.track('products');
            SQL);
    }

    protected function tearDown(): void
    {
        foreach ($this->servers as $server) {
            $server->stop();
        }
        $this->servers = [];
        unset($this->db);
    }

    /** Another server of the example, with a changed environment; stopped after the test. */
    protected function startServer(array $env): Server
    {
        return $this->servers[] = Server::start($env);
    }

    protected function post(string $path, array|string $body, ?string $baseUrl = null): HttpResponse
    {
        return Http::request('POST', ($baseUrl ?? self::baseUrl()) . $path, is_string($body) ? $body : self::encode($body));
    }

    protected function get(string $path, ?string $baseUrl = null): HttpResponse
    {
        return Http::request('GET', ($baseUrl ?? self::baseUrl()) . $path);
    }

    protected static function encode(mixed $value): string
    {
        return json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }

    /** A timestamp as the database renders it in JSON (in this session's TimeZone, as the server's). */
    protected function ts(string $timestamp): string
    {
        return $this->value("SELECT to_jsonb(CAST(:t AS timestamptz)) #>> '{}'", [':t' => $timestamp]);
    }

    /** The stored row of products, as JSON decoded, or null. */
    protected function product(string $id): ?array
    {
        $json = $this->value('SELECT to_jsonb(p)::text FROM public.products p WHERE p.id = CAST(:id AS uuid)', [':id' => $id]);
        return $json === null ? null : json_decode($json, true, 512, JSON_THROW_ON_ERROR);
    }

    /** The journal, oldest first, with JSON columns decoded and timestamps as JSON renders them. */
    protected function conflicts(): array
    {
        $rows = $this->rows(<<<'SQL'
            SELECT row_id, table_name, reason, op, client_payload::text AS client_payload,
                   to_jsonb(client_ts) #>> '{}' AS client_ts, client_id, mutation_id,
                   server_data::text AS server_data
              FROM inventory_sync.conflicts ORDER BY conflict_id
            SQL);
        return array_map(static function (array $row): array {
            foreach (['client_payload', 'server_data'] as $column) {
                $row[$column] = $row[$column] === null ? null : json_decode($row[$column], true, 512, JSON_THROW_ON_ERROR);
            }
            return $row;
        }, $rows);
    }

    protected function rows(string $sql, array $params = []): array
    {
        $statement = $this->db->prepare($sql);
        $statement->execute($params);
        return $statement->fetchAll();
    }

    protected function value(string $sql, array $params = []): mixed
    {
        $statement = $this->db->prepare($sql);
        $statement->execute($params);
        $value = $statement->fetchColumn();
        return $value === false ? null : $value;
    }

    /** assertSame for decoded JSON, with objects' keys in any order. */
    protected static function assertSameJson(mixed $expected, mixed $actual, string $message = ''): void
    {
        // An expected answer taken from an earlier one (a duplicate's) has its versions: compared whole.
        if (!str_contains((string) json_encode($expected), '"version"')) {
            $actual = self::unversioned($actual);
        }
        self::assertSame(self::sortKeys($expected), self::sortKeys($actual), $message);
    }

    /** A row version is the server's clock when the row was written: its form is checked, and it is left out. */
    private static function unversioned(mixed $value): mixed
    {
        if (!is_array($value)) {
            return $value;
        }
        if (!array_is_list($value) && array_key_exists('version', $value)
            && ($value['version'] === null || is_string($value['version']))) {
            if ($value['version'] !== null) {
                self::assertMatchesRegularExpression('/^[0-9a-f]{16}$/', $value['version']);
            }
            unset($value['version']);
        }
        return array_map([self::class, 'unversioned'], $value);
    }

    private static function sortKeys(mixed $value): mixed
    {
        if (!is_array($value)) {
            return $value;
        }
        $value = array_map([self::class, 'sortKeys'], $value);
        if (!array_is_list($value)) {
            ksort($value);
        }
        return $value;
    }
}
