-- Bug: once a newer write brought a deleted row back, the fields it did not send had no clock, so
-- a field_lww edit older than the delete, arriving after, still applied to them. Now the delete's
-- clock is the floor of the row's field clocks: the older edit answers conflict, whether the row
-- came back by a merging write or a plain one, on the default table and on tracked tables.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE isync_bug_items (id bigint PRIMARY KEY, f1 text, f2 text, note text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_items');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'f1', 'field_lww');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'f2', 'field_lww');
SELECT inventory_sync.set_policy('isync_bug_items', 'f1', 'field_lww');
SELECT inventory_sync.set_policy('isync_bug_items', 'f2', 'field_lww');
-- Each row: created at 00:00, deleted at 02:00, brought back at 03:00 (row 1 by a write of f1,
-- which merges; row 2 by a write of note, which does not), then an edit of f2 made at 01:00.
SELECT id, inventory_sync.sync_upsert(id, '{"f1": "seed", "f2": "seed"}', '2024-03-01 00:00+00')->>'status' AS created,
       inventory_sync.sync_delete(id, '2024-03-01 02:00+00')->>'status' AS deleted
  FROM (VALUES (1), (2)) AS v(id);
SELECT inventory_sync.sync_upsert(1, '{"f1": "A"}', '2024-03-01 03:00+00')->>'status' AS back;
SELECT inventory_sync.sync_upsert(2, '{"note": "A"}', '2024-03-01 03:00+00')->>'status' AS back;
SELECT inventory_sync.sync_upsert(1, '{"f2": "B"}', '2024-03-01 01:00+00');
SELECT inventory_sync.sync_upsert(2, '{"f2": "B"}', '2024-03-01 01:00+00');
-- The same on a tracked table.
SELECT id, inventory_sync.sync_upsert_in('isync_bug_items', id::text, '{"f1": "seed", "f2": "seed"}', '2024-03-01 00:00+00')->>'status' AS created,
       inventory_sync.sync_delete_in('isync_bug_items', id::text, '2024-03-01 02:00+00')->>'status' AS deleted
  FROM (VALUES (1), (2)) AS v(id);
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"f1": "A"}', '2024-03-01 03:00+00')->>'status' AS back;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"note": "A"}', '2024-03-01 03:00+00')->>'status' AS back;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"f2": "B"}', '2024-03-01 01:00+00');
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"f2": "B"}', '2024-03-01 01:00+00');
-- An edit newer than the delete still applies to such a field.
SELECT inventory_sync.sync_upsert(1, '{"f2": "C"}', '2024-03-01 02:30+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"f2": "C"}', '2024-03-01 02:30+00')->>'status' AS status;
SELECT id, data, updated_at FROM inventory_sync.inventory ORDER BY id;
SELECT id, f1, f2, note, updated_at FROM isync_bug_items ORDER BY id;
SELECT table_name, row_id, reason, client_payload FROM inventory_sync.conflicts ORDER BY conflict_id;
DROP TABLE isync_bug_items;
DROP EXTENSION inventory_sync;
