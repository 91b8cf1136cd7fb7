-- set_policy and the policies view: how each field merges; merged answers.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'field_lww');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins');
SELECT * FROM inventory_sync.policies ORDER BY field;
SELECT inventory_sync.sync_upsert(1, '{"sku": "LT-1", "stock": 10, "price": 999}', '2024-03-01 09:00+00');
-- 10:00: the price changes; later a write stamped 09:30 arrives. Its stock delta applies, its
-- price (older than the price's own clock) and its sku (already set) lose: "merged".
SELECT inventory_sync.sync_upsert(1, '{"price": 949}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT jsonb_pretty(inventory_sync.sync_upsert(1, '{"sku": "LT-9", "stock": 7, "price": 899}',
       '2024-03-01 09:30+00', base => '{"stock": 10}'));
-- A delta field sent without a base is decided as lww, and the answer says so.
SELECT inventory_sync.sync_upsert(1, '{"stock": 50}', '2024-03-01 11:00+00');
-- A write where nothing applies is a conflict.
SELECT inventory_sync.sync_upsert(1, '{"sku": "LT-2"}', '2024-03-01 12:00+00');
-- Equal timestamps from two devices: the greater client_id wins, in either arrival order.
SELECT inventory_sync.sync_upsert(1, '{"price": 1}', '2024-03-01 13:00+00', client_id => 'phone-b')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"price": 2}', '2024-03-01 13:00+00', client_id => 'phone-a')->>'status' AS status;
SELECT data FROM inventory_sync.inventory;
SELECT row_id, reason, client_payload FROM inventory_sync.conflicts ORDER BY conflict_id;
-- Setting a field back to lww removes its policy.
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'lww');
SELECT * FROM inventory_sync.policies ORDER BY field;
DROP EXTENSION inventory_sync;
