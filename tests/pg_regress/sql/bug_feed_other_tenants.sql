-- Bug: any role that may write a tracked table could write inventory_sync.changes directly,
-- row-level security aside (e.g. turn another tenant's row into a tombstone in every pull), and
-- every role could read the entries of tables it may not SELECT. Now only the sync functions
-- write the feed (as its owner); a role reads the entries of the tables it may SELECT.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_bug_alice;
CREATE ROLE isync_bug_bob;
CREATE TABLE isync_bug_notes (
    id         bigint PRIMARY KEY,
    owner      name NOT NULL DEFAULT current_user,
    body       text,
    updated_at timestamptz NOT NULL
);
CREATE TABLE isync_bug_secret (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_notes');
SELECT inventory_sync.track('isync_bug_secret');
GRANT SELECT, INSERT, UPDATE, DELETE ON isync_bug_notes TO isync_bug_alice, isync_bug_bob;
ALTER TABLE isync_bug_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON isync_bug_notes USING (owner = current_user) WITH CHECK (owner = current_user);
SELECT inventory_sync.sync_upsert_in('isync_bug_secret', '7', '{"body": "payroll"}', '2024-03-01 09:00+00', 'hr-laptop')->>'status' AS status;
SET ROLE isync_bug_alice;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '100', '{"body": "alice"}', '2024-03-01 10:00+00')->>'status' AS status;
-- Bob's own writes still enter the feed, through the functions.
SET ROLE isync_bug_bob;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '200', '{"body": "bob"}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '201', '{"body": "bob too"}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_delete_in('isync_bug_notes', '201', '2024-03-01 10:30+00')->>'status' AS status;
-- Writing the feed directly: Alice's row made a tombstone with a far clock; a made-up tombstone.
UPDATE inventory_sync.changes SET op = 'delete', ts = '2999-01-01'
 WHERE inventory_sync.table_of(table_id) = 'isync_bug_notes'::regclass AND row_id = '100';
INSERT INTO inventory_sync.changes (table_id, row_id, id, op, ts, position, changed_at)
VALUES ((SELECT table_id FROM inventory_sync.tracked WHERE tbl = 'isync_bug_notes'::regclass),
        '300', '300', 'delete', '2999-01-01', 1, now());
-- Reading the entries of a table Bob may not SELECT: none.
SELECT row_id, client_id, ts FROM inventory_sync.changes WHERE inventory_sync.table_of(table_id) = 'isync_bug_secret'::regclass;
-- Alice still pulls her row as she wrote it.
SET ROLE isync_bug_alice;
SELECT c->>'table' AS tbl, c->'id' AS id, c->>'op' AS op, c->'data'->>'body' AS body, c->>'updated_at' AS updated_at
  FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c;
RESET ROLE;
SELECT inventory_sync.table_of(table_id) AS tbl, row_id, op, ts FROM inventory_sync.changes
 ORDER BY inventory_sync.table_of(table_id)::text, row_id;
DROP TABLE isync_bug_notes, isync_bug_secret;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_bug_alice, isync_bug_bob;
DROP ROLE isync_bug_alice, isync_bug_bob;
