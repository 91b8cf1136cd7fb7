-- Bug: any role could untrack another owner's table by pointing its row of inventory_sync.tracked
-- at a table of its own (UPDATE ... SET tbl): row-level security checked only the new table.
-- Now an update must own the table before and after: the row is not matched (0 rows moved) and the
-- table stays tracked.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE ROLE isync_bug_mallory;
CREATE SCHEMA isync_bug_mallory AUTHORIZATION isync_bug_mallory;
CREATE TABLE isync_bug_products (id bigint PRIMARY KEY, name text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_products');
SET ROLE isync_bug_mallory;
CREATE TABLE isync_bug_mallory.mine (id integer PRIMARY KEY, updated_at timestamptz NOT NULL);
WITH moved AS (UPDATE inventory_sync.tracked SET tbl = 'isync_bug_mallory.mine'
                WHERE tbl = 'isync_bug_products'::regclass RETURNING tbl)
SELECT count(*) AS moved FROM moved;
WITH removed AS (DELETE FROM inventory_sync.tracked WHERE tbl = 'isync_bug_products'::regclass RETURNING tbl)
SELECT count(*) AS removed FROM removed;
SELECT inventory_sync.untrack('isync_bug_products');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT table_name, key_column, ts_column, tracked_by FROM inventory_sync.tracked_tables;
SELECT inventory_sync.sync_upsert_in('isync_bug_products', '1', '{"name": "Laptops"}', '2024-03-01 09:00+00')->>'status' AS status;
-- The owner may still repoint and untrack its own rows.
SET ROLE isync_bug_mallory;
SELECT inventory_sync.track('isync_bug_mallory.mine');
CREATE TABLE isync_bug_mallory.other (id integer PRIMARY KEY, updated_at timestamptz NOT NULL);
WITH moved AS (UPDATE inventory_sync.tracked SET tbl = 'isync_bug_mallory.other'
                WHERE tbl = 'isync_bug_mallory.mine'::regclass RETURNING tbl)
SELECT count(*) AS moved FROM moved;
SELECT inventory_sync.untrack('isync_bug_mallory.other');
RESET ROLE;
SELECT table_name FROM inventory_sync.tracked_tables;
DROP TABLE isync_bug_products;
DROP TABLE isync_bug_mallory.mine, isync_bug_mallory.other;
DROP SCHEMA isync_bug_mallory;
DROP EXTENSION inventory_sync;
DROP ROLE isync_bug_mallory;
