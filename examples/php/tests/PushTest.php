<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

/** POST /sync/push: a device's whole queue in one sync_push call. */
final class PushTest extends SyncTestCase
{
    protected function setUp(): void
    {
        parent::setUp();
        // The server already has two products.
        $this->db->exec(<<<'SQL'
            SELECT inventory_sync.sync_upsert_in('products', '11111111-1111-1111-1111-111111111111',
                   '{"name": "Laptop", "stock": 15}', '2024-03-01 10:05+00');
            SELECT inventory_sync.sync_upsert_in('products', '22222222-2222-2222-2222-222222222222',
                   '{"name": "Mouse", "stock": 40}', '2024-03-01 10:06+00');
            SQL);
    }

    public function testEachChangeGetsItsOutcomeAndTheHttpCodeOfSyncChange(): void
    {
        $laptop = $this->product(self::U1);
        $ahead = gmdate('Y-m-d\TH:i:s\Z', time() + 86400);

        $r = $this->post('/sync/push', ['changes' => [
            ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 8], 'client_ts' => '2024-03-01T10:00:00Z'],
            ['op' => 'delete', 'table' => 'products', 'id' => self::U2, 'client_ts' => '2024-03-01T10:10:00Z'],
            ['table' => 'products', 'id' => self::U3, 'payload' => ['name' => 'Cable', 'stock' => 100],
                'client_ts' => '2024-03-01T10:11:00Z'],
            ['id' => 8, 'payload' => ['note' => 'count shelf B'], 'client_ts' => '2024-03-01T10:12:00Z'],
            ['table' => 'products', 'id' => self::U3, 'payload' => ['stok' => 99], 'client_ts' => '2024-03-01T10:13:00Z'],
            ['table' => 'products', 'id' => self::U3, 'payload' => ['stock' => 1], 'client_ts' => $ahead],
            ['table' => 'products', 'id' => self::U4, 'payload' => ['stock' => 1], 'client_ts' => '2024-03-01T10:14:00Z'],
        ]]);

        self::assertSame(200, $r->status);
        self::assertSame('application/json', $r->header('Content-Type'));
        $results = $r->json()['results'];
        self::assertSame(['results'], array_keys($r->json()));
        self::assertSame(['conflict', 'applied', 'applied', 'applied', 'error', 'rejected', 'rejected'], array_column($results, 'status'));
        self::assertSame([409, 200, 200, 200, 422, 422, 422], array_column($results, 'http'));

        self::assertSameJson(['id' => self::U1, 'status' => 'conflict', 'server_data' => $laptop, 'http' => 409], $results[0]);
        self::assertSameJson(['id' => self::U2, 'status' => 'applied', 'deleted' => true,
            'updated_at' => $this->ts('2024-03-01 10:10+00'), 'http' => 200], $results[1]);
        self::assertSameJson(['id' => self::U3, 'status' => 'applied', 'created' => true,
            'updated_at' => $this->ts('2024-03-01 10:11+00'), 'http' => 200], $results[2]);
        self::assertSameJson(['id' => 8, 'status' => 'applied', 'created' => true,
            'updated_at' => $this->ts('2024-03-01 10:12+00'), 'http' => 200], $results[3]);
        self::assertSameJson(['id' => self::U3, 'status' => 'error', 'sqlstate' => '42703',
            'message' => 'payload key "stok" is not a column of table public.products', 'http' => 422], $results[4]);
        self::assertSame('clock_skew', $results[5]['reason']);
        self::assertSame(['constraint', '23502'], [$results[6]['reason'], $results[6]['sqlstate']], 'a new product without its name');

        // What the database holds: exactly what the outcomes say.
        self::assertSame($laptop, $this->product(self::U1));
        self::assertNull($this->product(self::U2));
        self::assertSameJson(['id' => self::U3, 'name' => 'Cable', 'stock' => 100,
            'updated_at' => $this->ts('2024-03-01 10:11+00')], $this->product(self::U3));
        self::assertNull($this->product(self::U4));
        self::assertSame('{"note": "count shelf B"}', $this->value('SELECT data::text FROM inventory_sync.inventory WHERE id = 8'));
        self::assertSame(['stale', 'clock_skew', 'constraint'], array_column($this->conflicts(), 'reason'));
    }

    public function testTheSameQueueSentAgainIsAnsweredDuplicateAndAppliedOnce(): void
    {
        $queue = ['changes' => [
            ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 8],
                'client_ts' => '2024-03-01T10:00:00Z', 'client_id' => 'phone-a', 'mutation_id' => 'a-1'],
            ['table' => 'products', 'id' => self::U3, 'payload' => ['name' => 'Cable', 'stock' => 100],
                'client_ts' => '2024-03-01T10:11:00Z', 'client_id' => 'phone-a', 'mutation_id' => 'a-2'],
            ['id' => 8, 'payload' => ['note' => 'count shelf B'], 'client_ts' => '2024-03-01T10:12:00Z',
                'client_id' => 'phone-a', 'mutation_id' => 'a-3'],
        ]];
        $first = $this->post('/sync/push', $queue);
        self::assertSame(200, $first->status);
        self::assertSame([409, 200, 200], array_column($first->json()['results'], 'http'));
        // Meanwhile the cable sells out elsewhere.
        self::assertSame(200, $this->post('/sync/change', ['table' => 'products', 'id' => self::U3,
            'payload' => ['stock' => 0], 'client_ts' => '2024-03-01T10:20:00Z'])->status);

        $again = $this->post('/sync/push', $queue);

        self::assertSame(200, $again->status);
        $expected = array_map(static fn (array $o): array => $o + ['duplicate' => true], $first->json()['results']);
        self::assertSameJson($expected, $again->json()['results']);
        self::assertSame(0, $this->product(self::U3)['stock'], 'a-2 not applied again');
        self::assertSame(15, $this->product(self::U1)['stock']);
        self::assertCount(1, $this->conflicts(), 'the conflict of a-1 journaled once');
        self::assertSame(3, $this->value("SELECT count(*) FROM (SELECT client_id, mutation_id FROM inventory_sync.mutations UNION ALL SELECT client_id, mutation_id FROM inventory_sync.mutations_uuid) m WHERE client_id = 'phone-a'"));
    }

    public function testAnEmptyQueue(): void
    {
        $r = $this->post('/sync/push', '{"changes": []}');

        self::assertSame(200, $r->status);
        self::assertSame(['results' => []], $r->json());
    }

    public static function notAQueue(): array
    {
        return [
            'not JSON' => ['changes'],
            'an array' => ['[{"id": 1, "payload": {}, "client_ts": "2024-03-01T11:00:00Z"}]'],
            'an object without changes' => ['{"change": []}'],
            'an empty object' => ['{}'],
            'empty body' => [''],
        ];
    }

    /** @dataProvider notAQueue */
    public function testABodyThatIsNotAQueueIs400(string $body): void
    {
        $r = $this->post('/sync/push', $body);

        self::assertSame(400, $r->status);
        self::assertSame(['error'], array_keys($r->json()));
    }

    public static function changesNotAnArray(): array
    {
        return ['an object' => ['{"changes": {"id": 1}}'], 'null' => ['{"changes": null}'], 'a string' => ['{"changes": "a-1"}']];
    }

    /** @dataProvider changesNotAnArray */
    public function testChangesThatAreNotAnArrayAreRefusedByTheDatabase422(string $body): void
    {
        $r = $this->post('/sync/push', $body);

        self::assertSame(422, $r->status);
        self::assertSame(['error' => 'changes must be a JSON array', 'sqlstate' => '22023'], $r->json());
    }
}
