-- sync_upsert: each answer it gives, and what it writes.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
-- A new id: the row is inserted.
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10}', '2024-03-01 09:00+00');
-- A write not older than the row: merged into data key by key.
SELECT inventory_sync.sync_upsert(1, '{"stock": 15}', '2024-03-01 10:05+00');
-- An older write: a conflict showing the row that won; the row is not touched.
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00');
-- With client_id and mutation_id, sending the same write again answers the first answer again.
SELECT inventory_sync.sync_upsert(2, '{"name": "Mice"}', '2024-03-01 10:10+00',
       client_id => 'phone-a', mutation_id => 'a-17');
SELECT inventory_sync.sync_upsert(2, '{"name": "Mice"}', '2024-03-01 10:10+00',
       client_id => 'phone-a', mutation_id => 'a-17');
-- A client_ts more than inventory_sync.max_clock_skew (default 5 minutes) ahead of the server
-- clock: rejected and journaled. (client_ts and server_time depend on when this runs.)
SELECT jsonb_pretty(a - '{client_ts,server_time}'::text[]) AS answer,
       (a->>'client_ts')::timestamptz - (a->>'server_time')::timestamptz AS lead
  FROM inventory_sync.sync_upsert(1, '{"stock": 1}', now() + interval '1 hour') AS a;
-- What was written: the rows, the journal of writes that were not applied, the mutation ids.
SELECT id, data, updated_at, deleted, updated_by FROM inventory_sync.inventory ORDER BY id;
SELECT row_id, table_name, reason, op, client_payload, server_data->'stock' AS server_stock
  FROM inventory_sync.conflicts ORDER BY conflict_id;
SELECT row_id, inventory_sync.table_of(table_id) AS tbl, client_id, mutation_id, answer->>'status' AS status FROM inventory_sync.mutations;
DROP EXTENSION inventory_sync;
