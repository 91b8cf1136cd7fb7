<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

/**
 * Errors of the request itself: routing, retries, an unavailable database, an unexpected error.
 * Some tests start another server of the example with a changed libpq environment.
 */
final class ErrorsTest extends SyncTestCase
{
    private const NO_EXTENSION_DB = 'inventory_sync_php_example_no_extension';

    protected function tearDown(): void
    {
        $this->db->exec('DROP DATABASE IF EXISTS ' . self::NO_EXTENSION_DB . ' WITH (FORCE)');
        parent::tearDown();
    }

    public static function unknownPaths(): array
    {
        return [['GET', '/'], ['GET', '/sync'], ['POST', '/sync/changes'], ['GET', '/sync/pull/all'], ['POST', '/index.php']];
    }

    /** @dataProvider unknownPaths */
    public function testAnUnknownPathIs404(string $method, string $path): void
    {
        $r = Http::request($method, self::baseUrl() . $path, $method === 'POST' ? '{}' : null);

        self::assertSame(404, $r->status);
        self::assertSame(['error' => 'not found'], $r->json());
    }

    public static function wrongMethods(): array
    {
        return [['GET', '/sync/change', 'POST'], ['PUT', '/sync/change', 'POST'], ['GET', '/sync/push', 'POST'],
            ['POST', '/sync/pull', 'GET'], ['DELETE', '/sync/pull', 'GET']];
    }

    /** @dataProvider wrongMethods */
    public function testAWrongMethodIs405(string $method, string $path, string $allowed): void
    {
        $r = Http::request($method, self::baseUrl() . $path, $method === 'GET' ? null : '{}');

        self::assertSame(405, $r->status);
        self::assertSame($allowed, $r->header('Allow'));
        self::assertSame(['error' => 'method not allowed'], $r->json());
    }

    public function testASerializationFailureIsRetried(): void
    {
        // Under REPEATABLE READ, a change to a row that a concurrent transaction changed after the
        // call's snapshot fails with 40001; the next attempt sees the committed row.
        $server = $this->startServer(['PGOPTIONS' => '-c default_transaction_isolation=repeatable\\ read']);
        $this->seedLaptop();
        $this->db->beginTransaction();
        $this->rows("SELECT inventory_sync.sync_upsert_in('products', :id, '{\"stock\": 5}', '2024-03-01 10:10+00')", [':id' => self::U1]);

        $pending = Http::start('POST', $server->url, '/sync/change', self::encode(['table' => 'products', 'id' => self::U1,
            'payload' => ['stock' => 9], 'client_ts' => '2024-03-01T10:20:00Z']));
        $this->waitUntilABackendWaitsForALock();
        $this->db->commit();
        $r = Http::finish($pending);

        self::assertSame(200, $r->status, $r->body . "\n" . $server->log());
        self::assertSameJson(['id' => self::U1, 'status' => 'applied', 'created' => false,
            'updated_at' => $this->ts('2024-03-01 10:20+00')], $r->json());
        self::assertSame(9, $this->product(self::U1)['stock']);
        self::assertStringContainsString('SQLSTATE 40001, attempt 1 of 3: retrying', $server->log());
    }

    public static function retriedFailures(): array
    {
        return ['serialization failure' => ['40001'], 'deadlock' => ['40P01']];
    }

    /** @dataProvider retriedFailures */
    public function testAFailureThatPersistsIs503AfterThreeAttempts(string $sqlstate): void
    {
        $server = $this->startServer([]);
        $this->seedLaptop();
        $stored = $this->product(self::U1);
        $this->db->exec(<<<'SQL'
            CREATE FUNCTION public.php_example_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'failure % (test)', TG_ARGV[0] USING ERRCODE = TG_ARGV[0];
            END $$;
            SQL);
        // The SQLSTATE is a literal of the trigger, not a parameter: DDL takes none.
        $this->db->exec("CREATE TRIGGER fail BEFORE UPDATE ON public.products
            FOR EACH ROW EXECUTE FUNCTION public.php_example_fail('$sqlstate')");
        $change = ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 9], 'client_ts' => '2024-03-01T10:20:00Z'];

        $r = $this->post('/sync/change', $change, $server->url);

        self::assertSame(503, $r->status);
        self::assertSame(['error' => "failure $sqlstate (test)", 'sqlstate' => $sqlstate], $r->json());
        self::assertSame(2, substr_count($server->log(), "SQLSTATE $sqlstate, attempt"), 'three attempts: two retries');
        self::assertStringContainsString('attempt 2 of 3: retrying', $server->log());
        self::assertSame($stored, $this->product(self::U1));

        // In a batch, the failure aborts the whole call: the batch is retried as a whole, and
        // then nothing of it is written, not even its other, valid change.
        $r = $this->post('/sync/push', ['changes' => [$change,
            ['id' => 1, 'payload' => ['a' => 1], 'client_ts' => '2024-03-01T10:20:00Z']]], $server->url);

        self::assertSame(503, $r->status);
        self::assertSame(['error' => "failure $sqlstate (test)", 'sqlstate' => $sqlstate], $r->json());
        self::assertSame(4, substr_count($server->log(), "SQLSTATE $sqlstate, attempt"));
        self::assertSame(0, $this->value('SELECT count(*) FROM inventory_sync.inventory'));
        self::assertSame($stored, $this->product(self::U1));
    }

    public function testAReadOnlyDatabaseIs503(): void
    {
        $server = $this->startServer(['PGOPTIONS' => '-c default_transaction_read_only=on']);
        $change = ['table' => 'products', 'id' => self::U1, 'payload' => ['name' => 'Laptop'], 'client_ts' => '2024-03-01T10:20:00Z'];
        $refusal = ['error' => 'cannot execute sync_push() in a read-only transaction', 'sqlstate' => '25006'];

        $one = $this->post('/sync/change', $change, $server->url);
        $batch = $this->post('/sync/push', ['changes' => [$change]], $server->url);
        $pull = $this->get('/sync/pull', $server->url);

        self::assertSame([503, $refusal], [$one->status, $one->json()]);
        self::assertSame([503, $refusal], [$batch->status, $batch->json()]);
        self::assertSame(200, $pull->status, 'pulling only reads');
        self::assertNull($this->product(self::U1));
    }

    public function testAnUnreachableDatabaseIs503WithoutDetails(): void
    {
        $server = $this->startServer(['PGPORT' => '1', 'PGCONNECT_TIMEOUT' => '2']);

        $change = $this->post('/sync/change', ['id' => 1, 'payload' => [], 'client_ts' => '2024-03-01T10:20:00Z'], $server->url);
        $pull = $this->get('/sync/pull', $server->url);

        self::assertSame([503, ['error' => 'database unavailable']], [$change->status, $change->json()]);
        self::assertSame([503, ['error' => 'database unavailable']], [$pull->status, $pull->json()]);
        self::assertStringContainsString('database unavailable: ', $server->log());
    }

    public function testAnUnexpectedDatabaseErrorIs500WithTheDetailsOnlyInTheLog(): void
    {
        // A backend pointed at a database without the extension: SQLSTATE 3F000, no schema.
        $this->db->exec('CREATE DATABASE ' . self::NO_EXTENSION_DB);
        $server = $this->startServer(['PGDATABASE' => self::NO_EXTENSION_DB]);

        $r = $this->post('/sync/change', ['id' => 1, 'payload' => [], 'client_ts' => '2024-03-01T10:20:00Z'], $server->url);

        self::assertSame(500, $r->status);
        self::assertSame('{"error":"internal error"}', $r->body);
        self::assertStringContainsString('database error 3F000', $server->log());
        self::assertStringContainsString('schema "inventory_sync" does not exist', $server->log());
    }

    private function seedLaptop(): void
    {
        $r = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1,
            'payload' => ['name' => 'Laptop', 'stock' => 15], 'client_ts' => '2024-03-01T10:05:00Z']);
        self::assertSame(200, $r->status, $r->body);
    }

    private function waitUntilABackendWaitsForALock(): void
    {
        $watcher = self::connect();
        $deadline = microtime(true) + 10;
        do {
            $waiting = $watcher->query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")->fetchColumn();
            if ($waiting > 0) {
                return;
            }
            usleep(20_000);
        } while (microtime(true) < $deadline);
        self::fail('the server never waited for the row lock');
    }
}
