-- Bug: a delta field took a non-number when a write created the row or sent no base (decided
-- as lww): the string was stored, and every later delta on that field failed. Now a delta field
-- takes only numbers: 22023 "delta field ... needs numbers", and nothing is written.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
-- Creating the row, without and with a base.
SELECT inventory_sync.sync_upsert(1, '{"stock": "many"}', '2024-03-01 09:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"stock": "many"}', '2024-03-01 09:00+00', base => '{"stock": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS rows FROM inventory_sync.inventory;
-- A row holding a number: a non-number without a base, or in a push, is refused too.
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": "10"}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"stock": true, "name": "x"}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT o->>'status' AS status, o->>'sqlstate' AS sqlstate, o->>'message' AS message
  FROM jsonb_array_elements(inventory_sync.sync_push('[
    {"id": 1, "payload": {"stock": [1]}, "client_ts": "2024-03-01T10:00:00Z"},
    {"id": 2, "payload": {"stock": {"n": 1}}, "client_ts": "2024-03-01T10:00:00Z"}]')) AS o;
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
-- So deltas keep adding up on it.
SELECT inventory_sync.sync_upsert(1, '{"stock": 13}', '2024-03-01 10:00+00', base => '{"stock": 10}')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 11:00+00', base => '{"stock": 10}')->>'status' AS status;
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
DROP EXTENSION inventory_sync;
