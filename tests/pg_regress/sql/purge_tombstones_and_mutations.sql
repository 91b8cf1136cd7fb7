-- purge_tombstones and purge_mutations: the maintenance functions.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops"}', '2024-03-01 09:00+00',
       client_id => 'phone-a', mutation_id => 'a-1')->>'status' AS status;
-- Device A pulls now; device B pulls after the delete, so it has the tombstone.
SELECT inventory_sync.sync_pull()->>'cursor' AS cursor_a \gset
SELECT inventory_sync.sync_delete(1, '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_pull()->>'cursor' AS cursor_b \gset
-- Tombstones and mutation ids are removed by the server time of the delete or of the write
-- (here made to look 40 days old), never by client_ts.
UPDATE inventory_sync.inventory SET changed_at = changed_at - interval '40 days' WHERE deleted;
UPDATE inventory_sync.mutations SET applied_at = applied_at - interval '40 days';
SELECT inventory_sync.purge_tombstones('90 days') AS purged;
SELECT inventory_sync.purge_tombstones('30 days') AS purged;
SELECT inventory_sync.purge_mutations('30 days') AS forgotten;
SELECT count(*) AS horizon_rows FROM inventory_sync.purge_horizon;
-- A's cursor is from before the purged tombstone, which A never saw: refused. A starts over
-- from NULL. B's cursor goes on.
SELECT inventory_sync.sync_pull(:'cursor_a');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(:'cursor_b')->'changes' AS changes;
SELECT inventory_sync.sync_pull(NULL)->'changes' AS changes;
-- Without its tombstone, an old write of the item creates it again; without its mutation id, a
-- retry of a-1 is a new write (last-write-wins decides it).
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops"}', '2024-03-01 09:00+00',
       client_id => 'phone-a', mutation_id => 'a-1');
-- The age must not be negative.
SELECT inventory_sync.purge_tombstones('-1 day');
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION inventory_sync;
