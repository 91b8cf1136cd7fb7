-- Bug: any role could insert a row of inventory_sync.mutations in its own name for any table,
-- even one it may not write, claiming a device's next mutation ids: that device's real write then
-- failed with 42501 ("applied by another database user"). Now a claim needs write rights on
-- the table (row-level security refuses it), and the device's write applies.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_bug_app;
CREATE ROLE isync_bug_nobody;
CREATE TABLE isync_bug_notes (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_notes');
GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO isync_bug_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON isync_bug_notes TO isync_bug_app;
GRANT SELECT ON isync_bug_notes TO isync_bug_nobody;
-- A role without write rights claims the device's next ids, on both tables.
SET ROLE isync_bug_nobody;
INSERT INTO inventory_sync.mutations (row_id, table_id, client_id, mutation_id, shard_key)
VALUES ('1', 0, 'phone', 'next-1', 1);
\echo :LAST_ERROR_SQLSTATE
INSERT INTO inventory_sync.mutations (row_id, table_id, client_id, mutation_id, answer, shard_key)
VALUES ('1', (SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'isync_bug_notes'::regclass),
        'phone', 'next-2', '{"status": "applied"}', 1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT count(*) AS claimed FROM inventory_sync.mutations;
-- The device's writes with those ids apply.
SET ROLE isync_bug_app;
SELECT inventory_sync.sync_upsert(1, '{"stock": 5}', '2024-03-01 10:00+00', 'phone', 'next-1');
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '1', '{"body": "hi"}', '2024-03-01 10:00+00', 'phone', 'next-2');
-- A role with write rights may still record its own (what the functions do for it).
INSERT INTO inventory_sync.mutations (row_id, table_id, client_id, mutation_id, shard_key)
VALUES ('2', (SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'isync_bug_notes'::regclass),
        'phone', 'next-3', 2);
RESET ROLE;
SELECT row_id, inventory_sync.table_of(table_id) AS tbl, client_id, mutation_id, answer->>'status' AS status, db_user
  FROM inventory_sync.mutations ORDER BY mutation_id;
DROP TABLE isync_bug_notes;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_bug_app, isync_bug_nobody;
DROP ROLE isync_bug_app, isync_bug_nobody;
