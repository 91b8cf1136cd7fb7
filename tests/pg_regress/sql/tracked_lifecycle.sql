-- track, sync_upsert_in, sync_delete_in, untrack: the application's own tables.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE shelves (
    code        text PRIMARY KEY,
    label       text NOT NULL,
    capacity    integer NOT NULL DEFAULT 100,
    modified_at timestamptz
);
-- The write-timestamp column is not called updated_at here, so it is named.
SELECT inventory_sync.track('shelves', 'modified_at');
SELECT table_name, key_column, key_type, ts_column, tracked_by FROM inventory_sync.tracked_tables;
-- Answers as sync_upsert's; the id is the key as JSON (a string for a text key).
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"label": "Aisle A, shelf 12"}', '2024-03-01 09:00+00');
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 80}', '2024-03-01 10:00+00');
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 60}', '2024-03-01 09:30+00');
-- The payload may repeat the key, with the same value.
SELECT inventory_sync.sync_upsert_in('shelves', 'B-01', '{"code": "B-01", "label": "Aisle B, shelf 1"}', '2024-03-01 09:00+00');
SELECT * FROM shelves ORDER BY code;
-- A delete removes the row and keeps its tombstone in the feed (inventory_sync.changes_text for
-- a text key); an older edit
-- then gets a conflict whose server_data names the key and timestamp columns.
SELECT inventory_sync.sync_delete_in('shelves', 'B-01', '2024-03-01 11:00+00');
SELECT inventory_sync.sync_upsert_in('shelves', 'B-01', '{"capacity": 10}', '2024-03-01 10:30+00');
SELECT code FROM shelves ORDER BY code;
SELECT inventory_sync.table_of(table_id) AS tbl, row_id, id, op, ts FROM inventory_sync.changes_text ORDER BY row_id;
-- Untracked, the table is an ordinary table again; its rows stay.
SELECT inventory_sync.untrack('shelves');
SELECT count(*) AS tracked FROM inventory_sync.tracked_tables;
DROP TABLE shelves;
DROP EXTENSION inventory_sync;
