-- The Laptops story: two workers edit the same item while one of them is offline.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
-- 09:00: the item is created with a stock of 10.
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10, "location": "A-12"}', '2024-03-01 09:00+00');
-- 10:05: Worker B, online, sets the stock to 15.
SELECT inventory_sync.sync_upsert(1, '{"stock": 15}', '2024-03-01 10:05+00');
-- Worker A, offline since before 10:00, set it to 8 at 10:00; the write arrives now.
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00');
-- The row keeps B's 15 and the untouched fields ...
SELECT id, data, updated_at FROM inventory_sync.inventory;
-- ... and A's write is kept in the journal.
SELECT row_id, reason, client_payload, client_ts, server_data->'stock' AS server_stock, db_user
  FROM inventory_sync.conflicts;
-- A device whose clock runs a day ahead cannot win every conflict from now on.
SELECT inventory_sync.sync_upsert(1, '{"stock": 1}', now() + interval '1 day')->>'status' AS status;
DROP EXTENSION inventory_sync;
