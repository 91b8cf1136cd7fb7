-- Bug: JSON nested deeper than 128 levels ended in XX000 (an internal error): in sync_push, in
-- sync_upsert_in, in base, and in every sync_pull once one such row was stored. Now such values
-- are stored and pulled at any depth, and answered whole; a merge that must take one apart
-- refuses it with 54001.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
-- 300 and 126 levels of arrays.
SELECT repeat('[', 300) || repeat(']', 300) AS deep, repeat('[', 126) || repeat(']', 126) AS deep126 \gset
CREATE TABLE isync_bug_docs (id bigint PRIMARY KEY, doc jsonb, stock integer, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_docs');
-- A merge policy on another field of the default table.
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'field_lww');
-- Stored by every writing call.
SELECT inventory_sync.sync_upsert(1, format('{"doc": %s}', :'deep')::jsonb, '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"name": "x"}', '2024-03-01 09:00+00',
       base => format('{"doc": %s}', :'deep')::jsonb)->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_docs', '1', format('{"doc": %s}', :'deep')::jsonb,
       '2024-03-01 09:00+00')->>'status' AS status;
SELECT o->>'status' AS status, o->'id' AS id
  FROM jsonb_array_elements(inventory_sync.sync_push(format('[
    {"id": 3, "payload": {"ok": 1}, "client_ts": "2024-03-01T09:00:00Z"},
    {"id": 4, "payload": {"doc": %1$s}, "client_ts": "2024-03-01T09:00:00Z"},
    {"table": "isync_bug_docs", "id": 2, "payload": {"doc": %1$s}, "client_ts": "2024-03-01T09:00:00Z"}
  ]', :'deep')::jsonb)) AS o;
SELECT inventory_sync.sync_push(format('[{"id": 5, "payload": {"doc": %s}, "client_ts": "2024-03-01T09:00:00Z"}]',
       :'deep')::jsonb, atomic => true)->0->>'status' AS status;
-- Stored as sent.
SELECT id, data->'doc' = (:'deep')::jsonb AS doc_as_sent FROM inventory_sync.inventory WHERE data ? 'doc' ORDER BY id;
SELECT id, doc = (:'deep')::jsonb AS doc_as_sent FROM isync_bug_docs ORDER BY id;
-- Pulled whole: every change, each deep value as stored.
SELECT c->>'table' AS tbl, c->'id' AS id, c->'data'->'doc' = (:'deep')::jsonb AS doc_whole
  FROM jsonb_array_elements(inventory_sync.sync_pull()->'changes') WITH ORDINALITY AS e(c, n) ORDER BY e.n;
-- A merging write to a tracked row holding a deep value reads only the columns it writes:
-- applied; an older one answers conflict with the whole row.
SELECT inventory_sync.set_policy('isync_bug_docs', 'stock', 'field_lww');
SELECT inventory_sync.sync_upsert_in('isync_bug_docs', '1', '{"stock": 5}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT a->>'status' AS status, a->'server_data'->'doc' = (:'deep')::jsonb AS server_data_doc_whole
  FROM inventory_sync.sync_upsert_in('isync_bug_docs', '1', '{"stock": 4}', '2024-03-01 09:30+00') AS a;
-- An item 126 levels deep (127 with its object): a merging write answers it whole in server_data.
SELECT inventory_sync.sync_upsert(6, format('{"doc": %s}', :'deep126')::jsonb, '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(6, '{"stock": 1}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT a->>'status' AS status, a->'server_data'->'doc' = (:'deep126')::jsonb AS server_data_doc_whole
  FROM inventory_sync.sync_upsert(6, '{"stock": 2}', '2024-03-01 09:30+00') AS a;
-- Where a merge must take a value apart: 54001, not XX000, and nothing written.
\set VERBOSITY sqlstate
SELECT inventory_sync.sync_upsert(7, format('{"stock": 1, "doc": %s}', :'deep')::jsonb, '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert(1, '{"stock": 1}', '2024-03-01 10:00+00');
SELECT inventory_sync.sync_upsert_in('isync_bug_docs', '3', format('{"stock": 1, "doc": %s}', :'deep')::jsonb,
       '2024-03-01 09:00+00');
SELECT inventory_sync.sync_push(format('[{"id": 7, "payload": {"stock": 1, "doc": %s}, "client_ts": "2024-03-01T09:00:00Z"}]',
       :'deep')::jsonb)->0->>'sqlstate' AS sqlstate;
\set VERBOSITY default
SELECT id, data ? 'stock' AS has_stock FROM inventory_sync.inventory WHERE id IN (1, 7);
SELECT count(*) AS rows_with_id_3 FROM isync_bug_docs WHERE id = 3;
DROP TABLE isync_bug_docs;
DROP EXTENSION inventory_sync;
