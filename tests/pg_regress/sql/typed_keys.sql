-- sync_upsert_in and sync_delete_in take a tracked row's key as text, or typed: a number for a
-- bigint or integer key, a uuid for a uuid key. Every form names the same row; a key of the wrong
-- type is refused before anything is written.
CREATE EXTENSION inventory_sync;
CREATE TABLE isync_typed_items (id bigint PRIMARY KEY, name text, updated_at timestamptz);
CREATE TABLE isync_typed_small (id integer PRIMARY KEY, name text, updated_at timestamptz);
CREATE TABLE isync_typed_notes (id uuid PRIMARY KEY, body text, updated_at timestamptz);
SELECT inventory_sync.track('isync_typed_items');
SELECT inventory_sync.track('isync_typed_small');
SELECT inventory_sync.track('isync_typed_notes');

-- A number, then the same row as text: the later write wins, the earlier typed one loses.
SELECT inventory_sync.sync_upsert_in('isync_typed_items', 42, '{"name": "a"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_items', '42', '{"name": "b"}', '2024-03-01 09:05+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_items', 42::bigint, '{"name": "c"}', '2024-03-01 09:01+00');
-- An integer key takes a number too, within its range (22003 beyond it).
SELECT inventory_sync.sync_upsert_in('isync_typed_small', 7, '{"name": "s"}', '2024-03-01 09:00+00');
\set VERBOSITY sqlstate
SELECT inventory_sync.sync_upsert_in('isync_typed_small', 3000000000, '{"name": "big"}', '2024-03-01 09:00+00');
\set VERBOSITY default
-- A uuid, then the same row as text in capitals.
SELECT inventory_sync.sync_upsert_in('isync_typed_notes', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
       '{"body": "hi"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_notes', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
       '{"body": "again"}', '2024-03-01 09:05+00');
-- Keys of the wrong type (22P02), and no key (22004).
\set VERBOSITY sqlstate
SELECT inventory_sync.sync_upsert_in('isync_typed_items', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
       '{"name": "x"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_notes', 5, '{"body": "x"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_items', NULL::bigint, '{"name": "x"}', '2024-03-01 09:00+00');
\set VERBOSITY default
-- The default table by name takes a number as well.
SELECT inventory_sync.sync_upsert_in('inventory_sync.inventory', 5, '{"stock": 1}', '2024-03-01 09:00+00');

-- Deletes, typed.
SELECT inventory_sync.sync_delete_in('isync_typed_items', 42, '2024-03-01 10:00+00');
SELECT inventory_sync.sync_delete_in('isync_typed_notes', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid,
       '2024-03-01 10:00+00');
SELECT inventory_sync.sync_upsert_in('isync_typed_items', '42', '{"name": "late"}', '2024-03-01 09:30+00')->>'status' AS status;

SELECT * FROM isync_typed_items ORDER BY id;
SELECT * FROM isync_typed_small ORDER BY id;
SELECT * FROM isync_typed_notes ORDER BY id;
SELECT row_id, table_name, reason, client_payload FROM inventory_sync.conflicts ORDER BY conflict_id;
SELECT c->>'table' AS "table", c->>'id' AS id, c->>'op' AS op
  FROM jsonb_array_elements(inventory_sync.sync_pull(NULL)->'changes') AS c;

DROP TABLE isync_typed_items, isync_typed_small, isync_typed_notes;
DROP EXTENSION inventory_sync;
