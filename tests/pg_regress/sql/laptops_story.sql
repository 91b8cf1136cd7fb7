-- The Laptops story in three calls: Worker A is offline; Worker B is online.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
-- 09:00: the item is created with a stock of 10.
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10}', '2024-03-01 09:00+00');
-- 10:05: Worker B sets the stock to 15.
SELECT inventory_sync.sync_upsert(1, '{"stock": 15}', '2024-03-01 10:05+00');
-- Worker A set it to 8 at 10:00, offline; the write arrives now and loses to the newer 15.
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00');
DROP EXTENSION inventory_sync;
