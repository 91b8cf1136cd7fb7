-- Bad input: a clear error with a fitting SQLSTATE, and nothing written.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(NULL, '{}', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, NULL, now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '[{"stock": 1}]', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '"stock"', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', 'infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', '-infinity');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"id": 2, "stock": 1}', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"id": [1]}', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{"stock": ', now());
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', 'next tuesday');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_upsert(1, '{}', '2024-02-30 10:00');
\echo :LAST_ERROR_SQLSTATE
-- A read-only transaction (or a hot standby) refuses writes with PostgreSQL's own error.
BEGIN READ ONLY;
SELECT inventory_sync.sync_upsert(1, '{}', now());
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Nothing above was written.
SELECT id, data, updated_at FROM inventory_sync.inventory;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
DROP EXTENSION inventory_sync;
