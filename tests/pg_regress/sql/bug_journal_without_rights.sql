-- Bug: the clock-skew check came before any write right was needed, so a role that may only
-- read a table got "rejected" for a write stamped in the future and added a journal row holding
-- the row it targeted (server_data). Now such a write fails with 42501 like any other write by
-- that role, and nothing is journaled.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_bug_reader;
CREATE TABLE isync_bug_notes (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_notes');
GRANT SELECT ON inventory_sync.inventory, isync_bug_notes TO isync_bug_reader;
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '1', '{"body": "secret"}', '2024-03-01 09:00+00')->>'status' AS status;
SET ROLE isync_bug_reader;
SELECT inventory_sync.sync_upsert(1, '{"stock": 0}', now() + interval '1 hour');
SELECT inventory_sync.sync_delete(1, now() + interval '1 hour', 'reader', 'r-1');
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '1', '{"body": "x"}', now() + interval '1 hour');
SELECT inventory_sync.sync_delete_in('isync_bug_notes', '1', now() + interval '1 hour');
SELECT o->>'status' AS status, o->>'sqlstate' AS sqlstate, o->>'message' AS message
  FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array(
       jsonb_build_object('id', 1, 'payload', '{"stock": 0}'::jsonb, 'client_ts', now() + interval '1 hour'),
       jsonb_build_object('table', 'isync_bug_notes', 'id', 1, 'payload', '{"body": "x"}'::jsonb,
                          'client_ts', now() + interval '1 hour')))) AS o;
RESET ROLE;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
SELECT count(*) AS mutations FROM inventory_sync.mutations;
-- A role that may write is still answered "rejected", and journaled.
SELECT inventory_sync.sync_upsert(1, '{"stock": 0}', now() + interval '1 hour')->>'status' AS status;
SELECT row_id, reason, db_user FROM inventory_sync.conflicts;
SELECT id, data FROM inventory_sync.inventory;
SELECT id, body FROM isync_bug_notes;
DROP TABLE isync_bug_notes;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_bug_reader;
DROP ROLE isync_bug_reader;
