-- Bug: a write rejected for clock skew was remembered under its mutation id, so the same change,
-- sent again once the device's clock was right, got the old "rejected" answer back as a duplicate
-- and was never applied. Now a rejection is not remembered: the resend is decided afresh and
-- applied once; only a resend of an applied change is a duplicate.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SET inventory_sync.max_clock_skew = '5min';
CREATE TABLE isync_bug_notes (id bigint PRIMARY KEY, body text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_notes');
-- The device's clock is an hour ahead: rejected, journaled, not remembered.
SELECT a->>'status' AS status, a->>'reason' AS reason, a->'duplicate' AS duplicate
  FROM inventory_sync.sync_upsert(3, '{"x": 1}', now() + interval '1 hour', client_id => 'phone', mutation_id => 'm-1') AS a;
SELECT a->>'status' AS status, a->>'reason' AS reason
  FROM inventory_sync.sync_upsert_in('isync_bug_notes', '3', '{"body": "hi"}', now() + interval '1 hour',
       client_id => 'phone', mutation_id => 'm-2') AS a;
SELECT o->>'status' AS status, o->>'reason' AS reason
  FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array(jsonb_build_object(
       'id', 4, 'payload', '{"y": 1}'::jsonb, 'client_ts', now() + interval '1 hour',
       'client_id', 'phone', 'mutation_id', 'm-3')))) AS o;
SELECT count(*) AS remembered FROM inventory_sync.mutations;
-- The clock fixed, the same mutations again: applied, once.
SELECT inventory_sync.sync_upsert(3, '{"x": 1}', '2024-03-01 10:00+00', client_id => 'phone', mutation_id => 'm-1');
SELECT inventory_sync.sync_upsert_in('isync_bug_notes', '3', '{"body": "hi"}', '2024-03-01 10:00+00',
       client_id => 'phone', mutation_id => 'm-2');
SELECT inventory_sync.sync_push('[{"id": 4, "payload": {"y": 1}, "client_ts": "2024-03-01T10:00:00Z",
       "client_id": "phone", "mutation_id": "m-3"}]');
-- Sent once more: now the duplicate of the applied answer.
SELECT inventory_sync.sync_upsert(3, '{"x": 1}', '2024-03-01 10:00+00', client_id => 'phone', mutation_id => 'm-1');
SELECT id, data, updated_at FROM inventory_sync.inventory ORDER BY id;
SELECT id, body, updated_at FROM isync_bug_notes;
SELECT row_id, mutation_id, answer->>'status' AS status FROM inventory_sync.mutations ORDER BY mutation_id;
SELECT row_id, table_name, reason, client_payload FROM inventory_sync.conflicts ORDER BY conflict_id;
DROP TABLE isync_bug_notes;
DROP EXTENSION inventory_sync;
