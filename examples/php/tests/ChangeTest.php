<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

/** POST /sync/change: one change, its outcome as the database answered it. */
final class ChangeTest extends SyncTestCase
{
    public function testANewRowIsAppliedThenANewerChangeMergesIntoIt(): void
    {
        $r = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1,
            'payload' => ['name' => 'Laptop', 'stock' => 10], 'client_ts' => '2024-03-01T09:00:00Z']);

        self::assertSame(200, $r->status);
        self::assertSame('application/json', $r->header('Content-Type'));
        self::assertSameJson(['id' => self::U1, 'status' => 'applied', 'created' => true,
            'updated_at' => $this->ts('2024-03-01 09:00+00')], $r->json());
        self::assertSameJson(['id' => self::U1, 'name' => 'Laptop', 'stock' => 10,
            'updated_at' => $this->ts('2024-03-01 09:00+00')], $this->product(self::U1));

        $r = $this->post('/sync/change', ['op' => 'upsert', 'table' => 'public.products', 'id' => self::U1,
            'payload' => ['stock' => 7], 'client_ts' => '2024-03-01T09:30:00Z']);

        self::assertSame(200, $r->status);
        self::assertSameJson(['id' => self::U1, 'status' => 'applied', 'created' => false,
            'updated_at' => $this->ts('2024-03-01 09:30+00')], $r->json());
        self::assertSameJson(['id' => self::U1, 'name' => 'Laptop', 'stock' => 7,
            'updated_at' => $this->ts('2024-03-01 09:30+00')], $this->product(self::U1));
    }

    public function testAnOlderChangeIsAConflictWithTheStoredRowAndJournaled(): void
    {
        $this->seedLaptop();
        $stored = $this->product(self::U1);

        $r = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 8],
            'client_ts' => '2024-03-01T10:00:00Z', 'client_id' => 'phone-a', 'mutation_id' => 'a-1']);

        self::assertSame(409, $r->status);
        self::assertSameJson(['id' => self::U1, 'status' => 'conflict', 'server_data' => $stored], $r->json());
        self::assertSameJson(['id' => self::U1, 'name' => 'Laptop', 'stock' => 15,
            'updated_at' => $this->ts('2024-03-01 10:05+00')], $stored);
        self::assertSame($stored, $this->product(self::U1), 'the stored row is untouched');
        self::assertSameJson([[
            'row_id' => self::U1, 'table_name' => 'public.products', 'reason' => 'stale', 'op' => 'upsert',
            'client_payload' => ['stock' => 8], 'client_ts' => $this->ts('2024-03-01 10:00+00'),
            'client_id' => 'phone-a', 'mutation_id' => 'a-1', 'server_data' => $stored,
        ]], $this->conflicts());
    }

    public function testAChangeFromAClockADayAheadIsRejectedAndJournaled(): void
    {
        $this->seedLaptop();
        $stored = $this->product(self::U1);
        $ahead = gmdate('Y-m-d\TH:i:s\Z', time() + 86400);

        $r = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 1],
            'client_ts' => $ahead]);

        self::assertSame(422, $r->status);
        $outcome = $r->json();
        self::assertSame('rejected', $outcome['status']);
        self::assertSame('clock_skew', $outcome['reason']);
        self::assertSame(self::U1, $outcome['id']);
        self::assertSame($this->ts($ahead), $outcome['client_ts']);
        self::assertSame(300, $outcome['max_clock_skew_seconds']);
        self::assertEqualsWithDelta(86400, $outcome['ahead_by_seconds'], 120);
        self::assertStringContainsString('correct the device clock', $outcome['message']);
        self::assertSame($stored, $this->product(self::U1), 'the stored row is untouched');
        $journal = $this->conflicts();
        self::assertCount(1, $journal);
        self::assertSame('clock_skew', $journal[0]['reason']);
        self::assertSame(['stock' => 1], $journal[0]['client_payload']);
        self::assertSame($stored, $journal[0]['server_data']);
    }

    public static function invalidChanges(): array
    {
        $change = ['table' => 'products', 'id' => self::U1, 'client_ts' => '2024-03-01T11:00:00Z'];
        return [
            'unknown column' => [$change + ['payload' => ['colour' => 'red']], '42703',
                'payload key "colour" is not a column of table public.products'],
            'a value that does not fit' => [$change + ['payload' => ['stock' => 'lots']], '22P02',
                'invalid value for column "stock" of table public.products: invalid input syntax for type integer: "lots"'],
            'the timestamp column in the payload' => [$change + ['payload' => ['updated_at' => '2024-03-01T11:00:00Z']],
                '22023', 'payload key "updated_at" is the write-timestamp column of table public.products'],
            'unknown key in the change' => [$change + ['payload' => ['stock' => 1], 'colour' => 'red'],
                '22023', 'unknown key "colour" in change'],
        ];
    }

    /** @dataProvider invalidChanges */
    public function testAnInvalidChangeIsAnErrorThatWritesNothing(array $change, string $sqlstate, string $message): void
    {
        $this->seedLaptop();
        $stored = $this->product(self::U1);

        $r = $this->post('/sync/change', $change);

        self::assertSame(422, $r->status);
        self::assertSameJson(['id' => self::U1, 'status' => 'error', 'sqlstate' => $sqlstate, 'message' => $message], $r->json());
        self::assertSame($stored, $this->product(self::U1), 'the stored row is untouched');
        self::assertSame([], $this->conflicts());
    }

    public function testAChangeForAnUnknownTableIsAnError(): void
    {
        $r = $this->post('/sync/change', ['table' => 'nope', 'id' => 1, 'payload' => ['a' => 1],
            'client_ts' => '2024-03-01T11:00:00Z']);

        self::assertSame(422, $r->status);
        self::assertSameJson(['id' => 1, 'status' => 'error', 'sqlstate' => '42P01',
            'message' => 'relation "nope" does not exist'], $r->json());
    }

    public static function notAChange(): array
    {
        return [
            'not JSON' => ['stock: 8'],
            'truncated JSON' => ['{"id": 1, "payload": {'],
            'empty body' => [''],
            'an array of changes' => ['[{"id": 1, "payload": {}, "client_ts": "2024-03-01T11:00:00Z"}]'],
            'a string' => ['"change"'],
            'a number' => ['7'],
            'null' => ['null'],
        ];
    }

    /** @dataProvider notAChange */
    public function testABodyThatIsNotOneChangeIs400(string $body): void
    {
        $r = $this->post('/sync/change', $body);

        self::assertSame(400, $r->status);
        self::assertSame(['error'], array_keys($r->json()));
        self::assertIsString($r->json()['error']);
        self::assertSame(0, $this->value('SELECT count(*) FROM inventory_sync.inventory'));
    }

    public function testWithoutATableTheChangeIsForTheDefaultTable(): void
    {
        $r = $this->post('/sync/change', ['id' => 7, 'payload' => ['note' => 'restock Friday', 'qty' => 3],
            'client_ts' => '2024-03-01T10:07:00Z']);

        self::assertSame(200, $r->status);
        self::assertSameJson(['id' => 7, 'status' => 'applied', 'created' => true,
            'updated_at' => $this->ts('2024-03-01 10:07+00')], $r->json());
        self::assertSame([['data' => '{"qty": 3, "note": "restock Friday"}', 'updated_at' => $this->ts('2024-03-01 10:07+00')]],
            $this->rows("SELECT data::text AS data, to_jsonb(updated_at) #>> '{}' AS updated_at FROM inventory_sync.inventory WHERE id = 7"));
        self::assertNull($this->product(self::U1));
    }

    public function testNumbersGoThroughExactlyAsSent(): void
    {
        // Sent as text: PHP itself would turn 999.00 into 999.0 and the long number into a float.
        $r = $this->post('/sync/change',
            '{"id": 8, "payload": {"price": 999.00, "serial": 123456789012345678901234567890}, "client_ts": "2024-03-01T10:00:00Z"}');
        self::assertSame(200, $r->status);

        $r = $this->post('/sync/change', '{"id": 8, "payload": {"price": 5}, "client_ts": "2024-03-01T09:00:00Z"}');

        self::assertSame(409, $r->status);
        self::assertStringContainsString('"price": 999.00', $r->body);
        self::assertStringContainsString('"serial": 123456789012345678901234567890', $r->body);
        self::assertSame('999.00', $this->value("SELECT data->>'price' FROM inventory_sync.inventory WHERE id = 8"));
    }

    public function testARetryOfTheSameMutationIsAnsweredDuplicateAndAppliedOnce(): void
    {
        $change = ['table' => 'products', 'id' => self::U1, 'payload' => ['name' => 'Laptop', 'stock' => 5],
            'client_ts' => '2024-03-01T10:00:00Z', 'client_id' => 'phone-a', 'mutation_id' => 'a-1'];
        $first = $this->post('/sync/change', $change);
        self::assertSame(200, $first->status);
        // Another device writes the row later; then phone-a, which lost the answer, sends a-1 again.
        $other = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 7],
            'client_ts' => '2024-03-01T10:30:00Z', 'client_id' => 'phone-b', 'mutation_id' => 'b-1']);
        self::assertSame(200, $other->status);

        $retry = $this->post('/sync/change', $change);

        self::assertSame(200, $retry->status);
        self::assertSameJson($first->json() + ['duplicate' => true], $retry->json());
        self::assertSameJson(['id' => self::U1, 'status' => 'applied', 'created' => true,
            'updated_at' => $this->ts('2024-03-01 10:00+00'), 'duplicate' => true], $retry->json());
        self::assertSameJson(['id' => self::U1, 'name' => 'Laptop', 'stock' => 7,
            'updated_at' => $this->ts('2024-03-01 10:30+00')], $this->product(self::U1), 'not applied again');
        self::assertSame([], $this->conflicts(), 'nothing journaled: the retry is not an older write');
        self::assertSame(1, $this->value("SELECT count(*) FROM (SELECT client_id, mutation_id FROM inventory_sync.mutations UNION ALL SELECT client_id, mutation_id FROM inventory_sync.mutations_uuid) m WHERE client_id = 'phone-a'"));
    }

    public function testADeleteIsApplied(): void
    {
        $this->seedLaptop();

        $r = $this->post('/sync/change', ['op' => 'delete', 'table' => 'products', 'id' => self::U1,
            'client_ts' => '2024-03-01T10:10:00Z']);

        self::assertSame(200, $r->status);
        self::assertSameJson(['id' => self::U1, 'status' => 'applied', 'deleted' => true,
            'updated_at' => $this->ts('2024-03-01 10:10+00')], $r->json());
        self::assertNull($this->product(self::U1));
    }

    private function seedLaptop(): void
    {
        $r = $this->post('/sync/change', ['table' => 'products', 'id' => self::U1,
            'payload' => ['name' => 'Laptop', 'stock' => 15], 'client_ts' => '2024-03-01T10:05:00Z']);
        self::assertSame(200, $r->status, $r->body);
    }
}
