-- Bug: a server_wins field did not converge when a write sent null: a value set at 10:00 was
-- replaced by a null stamped 09:00 that arrived later (an "earlier" write), while the other
-- arrival order kept the value. Now null is no value and never replaces one: both orders, on
-- both kinds of table, end with the value.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE isync_bug_items (id bigint PRIMARY KEY, sku text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_items');
SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins');
SELECT inventory_sync.set_policy('isync_bug_items', 'sku', 'server_wins');
-- Row 1: the value (10:00, phone-b), then the null (09:00, phone-a). Row 2: the other order.
SELECT inventory_sync.sync_upsert(1, '{"sku": "LT-1"}', '2024-03-01 10:00+00', 'phone-b')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"sku": null}', '2024-03-01 09:00+00', 'phone-a');
SELECT inventory_sync.sync_upsert(2, '{"sku": null}', '2024-03-01 09:00+00', 'phone-a')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"sku": "LT-1"}', '2024-03-01 10:00+00', 'phone-b')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"sku": "LT-1"}', '2024-03-01 10:00+00', 'phone-b')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '1', '{"sku": null}', '2024-03-01 09:00+00', 'phone-a');
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"sku": null}', '2024-03-01 09:00+00', 'phone-a')->>'status' AS status;
SELECT inventory_sync.sync_upsert_in('isync_bug_items', '2', '{"sku": "LT-1"}', '2024-03-01 10:00+00', 'phone-b')->>'status' AS status;
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
SELECT id, sku FROM isync_bug_items ORDER BY id;
-- An earlier non-null value still counts as the real first one.
SELECT inventory_sync.sync_upsert(1, '{"sku": "LT-0"}', '2024-03-01 08:00+00', 'phone-c')->>'status' AS status;
SELECT id, data FROM inventory_sync.inventory WHERE id = 1;
DROP TABLE isync_bug_items;
DROP EXTENSION inventory_sync;
