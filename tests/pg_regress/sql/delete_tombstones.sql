-- sync_delete: deletes follow last-write-wins and leave tombstones.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
-- A delete newer than the row: applied; the row becomes a tombstone.
SELECT inventory_sync.sync_delete(1, '2024-03-01 10:00+00');
-- An edit older than the delete, arriving later, loses against the tombstone.
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 09:30+00');
-- A delete of an id the server never had leaves a tombstone too, so its older creation loses.
SELECT inventory_sync.sync_delete(2, '2024-03-01 10:00+00');
SELECT inventory_sync.sync_upsert(2, '{"name": "Mice"}', '2024-03-01 09:00+00')->>'status' AS status;
-- A delete older than the row: a conflict; nothing is removed.
SELECT inventory_sync.sync_upsert(3, '{"name": "Cables"}', '2024-03-01 11:00+00')->>'status' AS status;
SELECT inventory_sync.sync_delete(3, '2024-03-01 10:00+00');
-- An edit newer than the delete brings the item back, with only the fields it sends.
SELECT inventory_sync.sync_upsert(1, '{"stock": 3}', '2024-03-01 12:00+00');
SELECT id, data, updated_at, deleted FROM inventory_sync.inventory ORDER BY id;
DROP EXTENSION inventory_sync;
