-- The functions run with the caller's rights: an application role needs write grants on the
-- table it syncs (the journal and the schema are open to every role).
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE ROLE isync_app LOGIN;
CREATE ROLE isync_reader LOGIN;
GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO isync_app;
GRANT SELECT ON inventory_sync.inventory TO isync_reader;
SET ROLE isync_app;
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 10:05+00');
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00');
RESET ROLE;
SELECT row_id, reason, db_user FROM inventory_sync.conflicts;
-- Without write grants: 42501, and nothing written.
\set SHOW_CONTEXT never
SET ROLE isync_reader;
SELECT inventory_sync.sync_upsert(1, '{"stock": 20}', '2024-03-01 11:00+00');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(2, '{"stock": 20}', '2024-03-01 11:00+00');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT id, data FROM inventory_sync.inventory;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_app, isync_reader;
DROP ROLE isync_app, isync_reader;
