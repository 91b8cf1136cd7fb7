-- Maintenance: two purges from a scheduled job, and an eye on the journal.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 10:05+00', 'phone-b', 'b-1')->>'status' AS status;
SELECT inventory_sync.sync_upsert(1, '{"stock": 8}', '2024-03-01 10:00+00', 'phone-a', 'a-1')->>'status' AS status;
SELECT inventory_sync.sync_delete(2, '2024-03-01 10:00+00', 'phone-a', 'a-2')->>'status' AS status;
-- Daily, as the extension's owner: tombstones older than devices may stay offline, mutation ids
-- older than devices keep retrying. (Nothing is that old yet.)
SELECT inventory_sync.purge_tombstones('90 days') AS tombstones,
       inventory_sync.purge_mutations('7 days') AS mutation_ids;
-- What lost in the last day, by table and reason.
SELECT table_name, reason, count(*) FROM inventory_sync.conflicts
 WHERE detected_at > now() - interval '1 day' GROUP BY table_name, reason ORDER BY table_name, reason;
-- The journal is kept until you delete from it (as its owner), e.g. after six months.
DELETE FROM inventory_sync.conflicts WHERE detected_at < now() - interval '180 days';
-- How much each bookkeeping table holds.
SELECT (SELECT count(*) FROM inventory_sync.inventory WHERE deleted) AS default_tombstones,
       (SELECT count(*) FROM inventory_sync.changes WHERE op = 'delete')
         + (SELECT count(*) FROM inventory_sync.changes_uuid WHERE op = 'delete')
         + (SELECT count(*) FROM inventory_sync.changes_text WHERE op = 'delete') AS tracked_tombstones,
       (SELECT count(*) FROM inventory_sync.mutations)
         + (SELECT count(*) FROM inventory_sync.mutations_uuid)
         + (SELECT count(*) FROM inventory_sync.mutations_text) AS mutation_ids,
       (SELECT count(*) FROM inventory_sync.conflicts) AS journaled;
DROP EXTENSION inventory_sync;
