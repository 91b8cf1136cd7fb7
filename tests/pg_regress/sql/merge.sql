-- How a winning write merges into the stored item.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SET inventory_sync.max_clock_skew = -1;
SELECT inventory_sync.sync_upsert(7, '{"name": "Mouse", "stock": 3, "color": "black", "tags": ["usb"]}', '2024-03-01 09:00+00');
-- Keys the client did not send are kept; a key sent as null becomes null; values are replaced
-- whole (no deep merge of nested objects or arrays).
SELECT inventory_sync.sync_upsert(7, '{"stock": 4, "color": null, "tags": ["usb", "wireless"]}', '2024-03-01 09:30+00');
SELECT data FROM inventory_sync.inventory WHERE id = 7;
-- An equal timestamp is not newer than the stored one, so the write applies.
SELECT inventory_sync.sync_upsert(7, '{"stock": 5}', '2024-03-01 09:30+00');
-- One microsecond older loses.
SELECT inventory_sync.sync_upsert(7, '{"stock": 6}', '2024-03-01 09:29:59.999999+00');
-- The reserved keys id and updated_at never land in data; an id key equal to the argument
-- (as a number or as a string, for ids beyond 2^53 from JavaScript) is accepted.
SELECT inventory_sync.sync_upsert(7, '{"id": 7, "updated_at": "2030-01-01", "stock": 9}', '2024-03-01 10:00+00');
SELECT inventory_sync.sync_upsert(9007199254740993, '{"id": "9007199254740993", "stock": 1}', '2024-03-01 10:00+00');
SELECT id, data, updated_at FROM inventory_sync.inventory ORDER BY id;
-- Numbers are stored exactly as sent.
SELECT inventory_sync.sync_upsert(8, '{"price": 12345678901234567.891, "weight": 1.50}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT data FROM inventory_sync.inventory WHERE id = 8;
-- An empty payload changes nothing but the timestamp.
SELECT inventory_sync.sync_upsert(8, '{}', '2024-03-01 11:00+00');
SELECT data, updated_at FROM inventory_sync.inventory WHERE id = 8;
SELECT count(*) AS journaled FROM inventory_sync.conflicts;
DROP EXTENSION inventory_sync;
