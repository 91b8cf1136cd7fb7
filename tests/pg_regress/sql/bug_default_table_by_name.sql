-- Bug: sync_pull names the default table "inventory_sync.inventory", but sync_upsert_in,
-- sync_delete_in and sync_push changes naming it failed with 55000 "table ... is not tracked"
-- (and a hint to track() it, which track() refuses). Now they write it as sync_upsert and
-- sync_delete would, with the id as text.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT inventory_sync.sync_upsert_in('inventory_sync.inventory', '1', '{"name": "Laptops", "stock": 10}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('inventory_sync.inventory', '1', '{"stock": 8}', '2024-03-01 08:00+00');
SELECT inventory_sync.sync_delete_in('inventory_sync.inventory', '2', '2024-03-01 09:00+00');
-- The table name a pull answers, sent back in a push.
SELECT c->>'table' AS pulled_table FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c LIMIT 1 \gset
SELECT :'pulled_table' AS pulled_table;
SELECT jsonb_pretty(inventory_sync.sync_push(format('[
  {"table": "%1$s", "id": 3, "payload": {"name": "Mice"}, "client_ts": "2024-03-01T09:00:00Z"},
  {"table": "%1$s", "id": "1", "payload": {"stock": 9}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "%1$s", "op": "delete", "id": 3, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "%1$s", "id": "one", "payload": {}, "client_ts": "2024-03-01T10:00:00Z"}
]', :'pulled_table')::jsonb)) AS outcomes;
-- An id that is not a bigint: 22023, as for the default table's own calls.
SELECT inventory_sync.sync_upsert_in('inventory_sync.inventory', 'one', '{}', '2024-03-01 10:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT id, data, updated_at, deleted FROM inventory_sync.inventory ORDER BY id;
SELECT row_id, table_name, reason, client_payload FROM inventory_sync.conflicts;
-- Written to the default table only: nothing is tracked, nothing is in the tracked feed.
SELECT (SELECT count(*) FROM inventory_sync.tracked) AS tracked, (SELECT count(*) FROM inventory_sync.changes) AS feed;
DROP EXTENSION inventory_sync;
