-- The Laptops story again, with stock as a delta field: Worker A removed 2 laptops and Worker B
-- added 5, so the true stock is 13, whatever order their writes arrive in.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'field_lww');
SELECT * FROM inventory_sync.policies ORDER BY field;
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops", "stock": 10, "price": 999}', '2024-03-01 09:00+00');
-- 10:05: Worker B saw 10 and set 15; it sends what it started from as the base.
SELECT inventory_sync.sync_upsert(1, '{"stock": 15}', '2024-03-01 10:05+00', base => '{"stock": 10}');
-- Worker A, offline, saw 10 and set 8 at 10:00; it arrives later and still counts: 15 + (8 - 10).
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00', base => '{"stock": 10}');
SELECT data, updated_at FROM inventory_sync.inventory;
-- 10:10: the price changes. Then a write made at 10:02 arrives, changing the stock (a delta)
-- and the price (field_lww: its own clock says 10:10): the stock applies, the price loses.
SELECT inventory_sync.sync_upsert(1, '{"price": 949}', '2024-03-01 10:10+00');
SELECT jsonb_pretty(inventory_sync.sync_upsert(1, '{"stock": 12, "price": 899}', '2024-03-01 10:02+00',
                                               base => '{"stock": 13}'));
SELECT data FROM inventory_sync.inventory;
-- What lost is journaled.
SELECT row_id, reason, client_payload, server_data->'price' AS server_price FROM inventory_sync.conflicts;
DROP EXTENSION inventory_sync;
