-- Tracked tables run with the caller's rights: grants and row-level security apply, to the
-- write and to the server_data a conflict shows.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_alice;
CREATE ROLE isync_bob;
CREATE ROLE isync_reader;
CREATE TABLE notes (
    id         bigint PRIMARY KEY,
    owner      name NOT NULL DEFAULT current_user,
    body       text,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('notes');
GRANT SELECT, INSERT, UPDATE ON notes TO isync_alice, isync_bob;
GRANT SELECT ON notes TO isync_reader;

ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON notes USING (owner = current_user) WITH CHECK (owner = current_user);
SET ROLE isync_alice;
SELECT inventory_sync.sync_upsert_in('notes', '1', '{"body": "alice: the safe code is 1234"}', '2024-03-01 10:05+00');
SELECT inventory_sync.sync_upsert_in('notes', '1', '{"body": "alice, older"}', '2024-03-01 10:00+00')->'server_data'->>'body' AS alice_sees;
-- Bob cannot see Alice's note: his writes to it, older or newer, are not applied, and the
-- answer does not show him her row.
SET ROLE isync_bob;
SELECT inventory_sync.sync_upsert_in('notes', '1', '{"body": "bob, older"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('notes', '1', '{"body": "bob, newer"}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('notes', '2', '{"body": "bob''s own"}', '2024-03-01 11:00+00')->>'status' AS status;
SELECT id, owner, body FROM notes ORDER BY id;
-- Pulls show each user only what they may see.
SELECT c->'id' AS id, c->'data'->>'body' AS body FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c;
SET ROLE isync_alice;
SELECT c->'id' AS id, c->'data'->>'body' AS body FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') AS c;
-- A role that may only read gets 42501 and writes nothing.
SET ROLE isync_reader;
SELECT inventory_sync.sync_upsert_in('notes', '3', '{"body": "reader"}', '2024-03-01 11:00+00');
\echo :LAST_ERROR_SQLSTATE
-- Only the owner may track or untrack.
SELECT inventory_sync.untrack('notes');
\echo :LAST_ERROR_SQLSTATE
-- A role without SELECT on the table pulls nothing of it.
RESET ROLE;
REVOKE SELECT ON notes FROM isync_reader;
SET ROLE isync_reader;
SELECT inventory_sync.sync_pull()->'changes' AS changes;
RESET ROLE;
SELECT id, owner, body FROM notes ORDER BY id;
SELECT row_id, reason, db_user, server_data FROM inventory_sync.conflicts ORDER BY conflict_id;
DROP TABLE notes;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_alice, isync_bob, isync_reader;
DROP ROLE isync_alice, isync_bob, isync_reader;
