-- Bug: sync_pull's answer and every merging write's answer were built in memory freed before
-- PostgreSQL read the function's result (a use-after-free: the load test crashed the server).
-- Now every answer is intact and complete, also when later calls of the same statement run
-- before it is read. The crash itself showed under load (tests/reliability), not in one session.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE isync_bug_items (
    id         bigint PRIMARY KEY,
    name       text,
    qty        integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('isync_bug_items');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'field_lww');
SELECT inventory_sync.set_policy('isync_bug_items', 'qty', 'delta');
SELECT inventory_sync.set_policy('isync_bug_items', 'name', 'field_lww');
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10, "price": 999}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"name": "Mice", "stock": 5, "price": 20}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"name": "Cable", "qty": 3}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"price": 949}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"name": "USB cable"}', '2024-03-01 10:00+00')->>'status' AS status;
-- Merging writes answering merged and conflict (with server_data), two calls per statement:
-- the first answer is read after the second call ran.
SELECT a.answer
  FROM (SELECT inventory_sync.sync_upsert(1, '{"stock": 8, "price": 899}', '2024-03-01 09:30+00', base => '{"stock": 10}') AS merged,
               inventory_sync.sync_upsert(2, '{"price": 19}', '2024-03-01 08:00+00') AS conflict
        OFFSET 0) AS s,
       LATERAL (VALUES (1, s.merged), (2, s.conflict)) AS a(n, answer) ORDER BY a.n;
SELECT a.answer
  FROM (SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"name": "Cable", "qty": 4}', '2024-03-01 09:30+00', base => '{"qty": 3}') AS merged,
               inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"name": "Cord"}', '2024-03-01 08:00+00') AS conflict
        OFFSET 0) AS s,
       LATERAL (VALUES (1, s.merged), (2, s.conflict)) AS a(n, answer) ORDER BY a.n;
-- A push of merging changes: its answer holds each merged answer.
SELECT jsonb_pretty(inventory_sync.sync_push('[
  {"id": 1, "payload": {"stock": 7, "price": 1}, "base": {"stock": 8}, "client_ts": "2024-03-01T09:40:00Z"},
  {"table": "isync_bug_items", "id": 1, "payload": {"qty": 5, "name": "C"}, "base": {"qty": 4}, "client_ts": "2024-03-01T09:40:00Z"}
]')) AS pushed;
-- Three pulls answering rows of both tables in one statement: alike and complete.
SELECT s.first = s.second AND s.second = s.third AS alike, s.first->'has_more' AS has_more,
       c->>'table' AS tbl, c->'id' AS id, c->>'op' AS op, c->'data' AS data, c->>'updated_at' AS updated_at
  FROM (SELECT inventory_sync.sync_pull() AS first, inventory_sync.sync_pull() AS second,
               inventory_sync.sync_pull() AS third OFFSET 0) AS s,
       jsonb_array_elements(s.first->'changes') WITH ORDINALITY AS e(c, n)
 ORDER BY e.n;
-- Two pages in one statement: page 1 is read after page 2 was answered.
SELECT p.page, p.answer->'has_more' AS has_more, c->>'table' AS tbl, c->'id' AS id, c->'data' AS data
  FROM (SELECT inventory_sync.sync_pull(NULL, 2) AS p1,
               inventory_sync.sync_pull(inventory_sync.sync_pull(NULL, 2)->>'cursor', 2) AS p2 OFFSET 0) AS s,
       LATERAL (VALUES (1, s.p1), (2, s.p2)) AS p(page, answer),
       jsonb_array_elements(p.answer->'changes') WITH ORDINALITY AS e(c, n)
 ORDER BY p.page, e.n;
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
SELECT id, name, qty FROM isync_bug_items ORDER BY id;
DROP TABLE isync_bug_items;
DROP EXTENSION inventory_sync;
