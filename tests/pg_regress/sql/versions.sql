-- Row versions and compare-and-set: the Laptops story decided by the row's version, whatever
-- the devices' clocks say.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
-- Every applied write gives its row a version issued by the server (its clock in microseconds,
-- never going backwards for a row): 16 hex digits, opaque to clients, sorting as the versions
-- do. The outputs here show each version as dots (it differs on every run); the comparisons are
-- made in SQL.
-- 09:00: a device creates the item. base_version '' says "only if it does not exist yet".
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10}', '2024-03-01 09:00+00',
                                  base_version => '') AS created \gset
SELECT :'created'::jsonb - 'version' AS created, length(:'created'::jsonb->>'version') AS version_length;
SELECT :'created'::jsonb->>'version' AS v1 \gset
-- Both workers pulled the item at v1. Worker B, online, sells five: the row is still at v1.
SELECT inventory_sync.sync_upsert(1, '{"stock": 5}', '2024-03-01 10:05+00', base_version => :'v1') AS b \gset
SELECT :'b'::jsonb->>'status' AS status, :'b'::jsonb->>'version' > :'v1' AS version_grew;
SELECT :'b'::jsonb->>'version' AS v2 \gset
-- Worker A, offline, sold two at 10:00 on a clock that runs a day fast: by the clocks alone
-- A's write would win. It was made at v1, and the row has moved on: a conflict, with the row
-- as it stands and its version, journaled; nothing is written.
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-02 10:00+00', base_version => :'v1') AS a \gset
SELECT :'a'::jsonb->>'status' AS status, :'a'::jsonb->'server_data' AS server_data,
       :'a'::jsonb->>'version' = :'v2' AS at_v2;
SELECT data, lpad(to_hex(version), 16, '0') = :'v2' AS at_v2 FROM inventory_sync.inventory;
SELECT row_id, reason, client_payload FROM inventory_sync.conflicts;
-- A's app merges by hand (5 left, two sold on A: 3) and sends again at v2: applied.
SELECT inventory_sync.sync_upsert(1, '{"stock": 3}', '2024-03-02 10:01+00', base_version => :'v2')->>'status' AS status;
-- A second create of the same item, or a version of an item that does not exist, conflicts.
SELECT inventory_sync.sync_upsert(1, '{"stock": 1}', '2024-03-02 11:00+00', base_version => '')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"stock": 1}', '2024-03-02 11:00+00', base_version => :'v2') - 'version' AS answer;
-- Deletes take a base version too; the tombstone has a version of its own to come back from.
SELECT inventory_sync.sync_delete(1, '2024-03-02 12:00+00', base_version => :'v2')->>'status' AS stale_delete;
-- Pulls carry each row's version, which a device keeps as its next base_version.
SELECT c->>'id' AS id, c->>'op' AS op,
       c->>'version' = (SELECT lpad(to_hex(version), 16, '0') FROM inventory_sync.inventory WHERE id = 1) AS current
  FROM jsonb_array_elements(inventory_sync.sync_pull(NULL)->'changes') c;
-- sync_push takes "base_version" in each change.
SELECT o->>'status' AS status
  FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array(
         jsonb_build_object('id', 1, 'payload', '{"stock": 2}'::jsonb, 'client_ts', '2024-03-02 13:00+00',
                            'base_version', :'v1'),
         jsonb_build_object('op', 'delete', 'id', 3, 'client_ts', '2024-03-02 13:00+00', 'base_version', '')))) o;
-- A base_version that is not a version is an error (22023), and nothing is written.
\set VERBOSITY default
SELECT inventory_sync.sync_upsert(4, '{}', '2024-03-02 13:00+00', base_version => '42');
SELECT count(*) AS items_4 FROM inventory_sync.inventory WHERE id = 4;
DROP EXTENSION inventory_sync;
