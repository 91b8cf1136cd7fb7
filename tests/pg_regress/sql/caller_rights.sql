-- Rights: the functions run with the caller's rights (SECURITY INVOKER).
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE ROLE isync_ref_app;
CREATE ROLE isync_ref_other;
CREATE TABLE products (id bigint PRIMARY KEY, name text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('products');
-- What an application role needs: rights on the tables it syncs.
GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO isync_ref_app, isync_ref_other;
GRANT SELECT, INSERT, UPDATE, DELETE ON products TO isync_ref_app, isync_ref_other;
SET ROLE isync_ref_app;
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 10:05+00', 'phone-a', 'a-1')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_delete_in('products', '5', '2024-03-01 10:00+00')->>'status' AS status;
SELECT jsonb_array_length(inventory_sync.sync_pull()->'changes') AS pulled;
-- It sees its own mutation ids and the tracked tables; reading the journal takes
-- a grant.
SELECT row_id, client_id, mutation_id, db_user FROM inventory_sync.mutations;
SELECT table_name FROM inventory_sync.tracked_tables;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
-- Policies, tracking and the maintenance functions are for the owners.
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.untrack('products');
SELECT inventory_sync.purge_tombstones('90 days');
-- purge_mutations forgets only the caller's own mutation ids (none old enough here).
SELECT inventory_sync.purge_mutations('7 days');
-- Another database user may not replay this user's mutation id, nor see it.
SET ROLE isync_ref_other;
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 10:05+00', 'phone-a', 'a-1');
SELECT count(*) AS mutations FROM inventory_sync.mutations;
RESET ROLE;
GRANT SELECT ON inventory_sync.conflicts TO isync_ref_app;
SET ROLE isync_ref_app;
SELECT row_id, reason, client_payload, db_user FROM inventory_sync.conflicts;
RESET ROLE;
DROP TABLE products;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_ref_app, isync_ref_other;
DROP ROLE isync_ref_app, isync_ref_other;
