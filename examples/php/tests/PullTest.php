<?php

declare(strict_types=1);

namespace InventorySyncExample\Tests;

/** GET /sync/pull?since=CURSOR&limit=N */
final class PullTest extends SyncTestCase
{
    public function testFromTheBeginningThenFromTheCursorOnlyWhatIsNewer(): void
    {
        $this->change(['table' => 'products', 'id' => self::U1, 'payload' => ['name' => 'Laptop', 'stock' => 15],
            'client_ts' => '2024-03-01T10:05:00Z']);
        $this->change(['id' => 7, 'payload' => ['note' => 'restock Friday'], 'client_ts' => '2024-03-01T10:07:00Z']);

        $r = $this->get('/sync/pull');

        self::assertSame(200, $r->status);
        self::assertSame('application/json', $r->header('Content-Type'));
        $page = $r->json();
        self::assertSameJson([
            ['table' => 'public.products', 'id' => self::U1, 'op' => 'upsert', 'data' => $this->product(self::U1),
                'updated_at' => $this->ts('2024-03-01 10:05+00')],
            ['table' => 'inventory_sync.inventory', 'id' => 7, 'op' => 'upsert',
                'data' => ['note' => 'restock Friday'],
                'updated_at' => $this->ts('2024-03-01 10:07+00')],
        ], $page['changes']);
        self::assertFalse($page['has_more']);
        self::assertIsString($page['cursor']);
        $cursor = $page['cursor'];

        // Up to date: nothing, and the cursor stays.
        $page = $this->get('/sync/pull?since=' . rawurlencode($cursor))->json();
        self::assertSameJson(['changes' => [], 'cursor' => $cursor, 'has_more' => false], $page);

        // Another device edits the laptop and deletes the note: the next pull has just those.
        $this->change(['table' => 'products', 'id' => self::U1, 'payload' => ['stock' => 14], 'client_ts' => '2024-03-01T10:20:00Z']);
        $this->change(['op' => 'delete', 'id' => 7, 'client_ts' => '2024-03-01T10:21:00Z']);

        $r = $this->get('/sync/pull?since=' . rawurlencode($cursor));

        self::assertSame(200, $r->status);
        $page = $r->json();
        self::assertSameJson([
            ['table' => 'public.products', 'id' => self::U1, 'op' => 'upsert',
                'data' => ['id' => self::U1, 'name' => 'Laptop', 'stock' => 14, 'updated_at' => $this->ts('2024-03-01 10:20+00')],
                'updated_at' => $this->ts('2024-03-01 10:20+00')],
            ['table' => 'inventory_sync.inventory', 'id' => 7, 'op' => 'delete', 'data' => null,
                'updated_at' => $this->ts('2024-03-01 10:21+00')],
        ], $page['changes']);
        self::assertFalse($page['has_more']);
        self::assertNotSame($cursor, $page['cursor']);
        self::assertSame([], $this->get('/sync/pull?since=' . rawurlencode($page['cursor']))->json()['changes']);
    }

    public function testPagesOfLimitChanges(): void
    {
        foreach ([1, 2, 3] as $id) {
            $this->change(['id' => $id, 'payload' => ['n' => $id], 'client_ts' => "2024-03-01T10:0{$id}:00Z"]);
        }

        $first = $this->get('/sync/pull?limit=2')->json();
        $second = $this->get('/sync/pull?limit=2&since=' . rawurlencode($first['cursor']))->json();

        self::assertSame([1, 2], array_column($first['changes'], 'id'));
        self::assertTrue($first['has_more']);
        self::assertSame([3], array_column($second['changes'], 'id'));
        self::assertSame(['n' => 3], $second['changes'][0]['data']);
        self::assertSame($this->ts('2024-03-01 10:03+00'), $second['changes'][0]['updated_at']);
        self::assertFalse($second['has_more']);
    }

    public function testABadCursorIs422(): void
    {
        $r = $this->get('/sync/pull?since=not-a-cursor');

        self::assertSame(422, $r->status);
        self::assertSame(['error' => 'invalid cursor', 'sqlstate' => '22023'], $r->json());
    }

    public static function limitsOutOfRange(): array
    {
        return [
            'zero' => ['0', '22023', 'lim must be between 1 and 100000'],
            'above the maximum' => ['100001', '22023', 'lim must be between 1 and 100000'],
            'beyond integer' => ['99999999999', '22003', 'value "99999999999" is out of range for type integer'],
        ];
    }

    /** @dataProvider limitsOutOfRange */
    public function testALimitOutOfRangeIsRefusedByTheDatabase422(string $limit, string $sqlstate, string $message): void
    {
        $r = $this->get("/sync/pull?limit=$limit");

        self::assertSame(422, $r->status);
        self::assertSame(['error' => $message, 'sqlstate' => $sqlstate], $r->json());
    }

    public static function malformedQueries(): array
    {
        return [
            'limit not a number' => ['limit=ten'],
            'limit not an integer' => ['limit=1.5'],
            'empty limit' => ['limit='],
            'several cursors' => ['since[]=a&since[]=b'],
        ];
    }

    /** @dataProvider malformedQueries */
    public function testAMalformedQueryIs400(string $query): void
    {
        $r = $this->get("/sync/pull?$query");

        self::assertSame(400, $r->status);
        self::assertSame(['error'], array_keys($r->json()));
    }

    public function testACursorFromBeforeATombstonePurgeIs410(): void
    {
        $this->change(['table' => 'products', 'id' => self::U1, 'payload' => ['name' => 'Laptop'], 'client_ts' => '2024-03-01T10:00:00Z']);
        $old = $this->get('/sync/pull')->json()['cursor'];
        $this->change(['op' => 'delete', 'table' => 'products', 'id' => self::U1, 'client_ts' => '2024-03-01T10:10:00Z']);
        // The tombstone is 40 days old by server time, and a daily job purges those over 30.
        $this->db->exec("UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '40 days' WHERE op = 'delete'");
        self::assertSame(1, $this->value("SELECT inventory_sync.purge_tombstones('30 days')"));

        $r = $this->get('/sync/pull?since=' . rawurlencode($old));

        self::assertSame(410, $r->status);
        self::assertSame(['error' => 'cursor is older than the last tombstone purge', 'sqlstate' => '55000'], $r->json());
        // The device drops its copy and pulls from the beginning.
        $r = $this->get('/sync/pull');
        self::assertSame(200, $r->status);
        self::assertSame([], $r->json()['changes']);
    }

    private function change(array $change): void
    {
        $r = $this->post('/sync/change', $change);
        self::assertSame(200, $r->status, $r->body);
    }
}
