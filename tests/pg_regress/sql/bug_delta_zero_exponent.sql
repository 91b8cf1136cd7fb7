-- Bug (found by the merge fuzz target): a delta result of zero with an exponent (8e+38 - 8e+38)
-- was printed as a run of zeros, not JSON, and the write failed with XX000. Latent through SQL
-- (numbers reach the merge as jsonb prints them, without exponents); what must hold: such a
-- delta stores 0 exactly, on the default table and on a numeric column.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE isync_bug_items (id bigint PRIMARY KEY, qty numeric, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_items');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.set_policy('isync_bug_items', 'qty', 'delta');
-- The fuzzer's input: no current value, sent 0, base 8e+38.
SELECT inventory_sync.sync_upsert(1, '{"stock": 0}', '2024-03-01 10:00+00', base => '{"stock": 8e+38}');
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"qty": 0}', '2024-03-01 10:00+00', base => '{"qty": 8e+38}');
-- A stored 8e+38 brought to zero, and zero reached through small exponents.
SELECT inventory_sync.sync_upsert(2, '{"stock": 8e+38}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"stock": 0}', '2024-03-01 11:00+00', base => '{"stock": 8e+38}')->>'status' AS status;
SELECT inventory_sync.sync_upsert(3, '{"stock": 1e-20}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(3, '{"stock": 0}', '2024-03-01 11:00+00', base => '{"stock": 1e-20}')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"qty": 8e+38}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"qty": 0}', '2024-03-01 11:00+00', base => '{"qty": 8e+38}')->>'status' AS status;
SELECT id, data, data->'stock' = '0'::jsonb AS is_zero FROM inventory_sync.inventory ORDER BY id;
SELECT id, qty, qty = 0 AS is_zero FROM isync_bug_items ORDER BY id;
SELECT c->>'table' AS tbl, c->'id' AS id, c->'data' AS data
  FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') WITH ORDINALITY AS e(c, n) ORDER BY e.n;
DROP TABLE isync_bug_items;
DROP EXTENSION inventory_sync;
