-- Bug: a merging write (a field with a merge policy) to a row that row-level security hides from
-- the caller failed with 40001 "could not settle the write ... after 10 attempts". Now it answers
-- conflict with "server_data": null, as a last-write-wins write does: the row is untouched and
-- the write is journaled without server_data.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_bug_alice;
CREATE ROLE isync_bug_bob;
CREATE TABLE isync_bug_notes (
    id         bigint PRIMARY KEY,
    owner      name NOT NULL DEFAULT current_user,
    body       text,
    n          integer,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('isync_bug_notes');
SELECT inventory_sync.set_policy('isync_bug_notes', 'body', 'field_lww');
SELECT inventory_sync.set_policy('isync_bug_notes', 'n', 'delta');
GRANT SELECT, INSERT, UPDATE, DELETE ON isync_bug_notes TO isync_bug_alice, isync_bug_bob;
ALTER TABLE isync_bug_notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_notes ON isync_bug_notes USING (owner = current_user) WITH CHECK (owner = current_user);
SET ROLE isync_bug_alice;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '100', '{"body": "alice: the code is 1234", "n": 5}', '2024-03-01 10:00+00')->>'status' AS status;
-- Bob cannot see row 100: his merging writes to it, older or newer, field_lww or delta.
SET ROLE isync_bug_bob;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '100', '{"body": "bob"}', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '100', '{"body": "bob"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '100', '{"n": 7}', '2024-03-01 11:00+00', base => '{"n": 5}');
SELECT inventory_sync.sync_push('[{"table": "isync_bug_notes", "id": 100, "payload": {"n": 9}, "base": {"n": 5},
       "client_ts": "2024-03-01T11:00:00Z"}]');
-- His own row merges as usual.
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '200', '{"body": "bob", "n": 1}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '200', '{"n": 3}', '2024-03-01 11:00+00', base => '{"n": 1}')->>'status' AS status;
RESET ROLE;
SELECT id, owner, body, n FROM isync_bug_notes ORDER BY id;
SELECT row_id, reason, client_payload, server_data IS NULL AS no_server_data, db_user
  FROM inventory_sync.conflicts ORDER BY conflict_id;
DROP TABLE isync_bug_notes;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_bug_alice, isync_bug_bob;
DROP ROLE isync_bug_alice, isync_bug_bob;
