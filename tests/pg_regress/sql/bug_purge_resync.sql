-- Bug: after a tombstone purge, a device that pulled everything again from the beginning (as the
-- 55000 hint says) in pages got 55000 "cursor is older than the last tombstone purge" on its second
-- page whenever the first ended before the purged tombstone, so it could never finish. Now cursors
-- carry the purge epoch: a walk begun after the purge is never refused; older cursors still are.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT inventory_sync.sync_upsert(1, '{"a": 1}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_pull()->>'cursor' AS before_purge \gset
SELECT inventory_sync.sync_upsert(2, '{"a": 2}', '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_delete(3, '2024-03-01 10:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(4, '{"a": 4}', '2024-03-01 10:00+00')->>'status' AS status;
-- The tombstone of 3 made to look 40 days old, and purged.
UPDATE inventory_sync.inventory SET changed_at = changed_at - interval '40 days' WHERE deleted;
SELECT inventory_sync.purge_tombstones('30 days') AS purged;
-- A walk from the beginning, one change per page: every page is answered.
SELECT inventory_sync.sync_pull(NULL, 1) AS page \gset
SELECT (:'page'::jsonb)->'changes'->0->'id' AS id, (:'page'::jsonb)->'has_more' AS has_more;
SELECT inventory_sync.sync_pull((:'page'::jsonb)->>'cursor', 1) AS page \gset
SELECT (:'page'::jsonb)->'changes'->0->'id' AS id, (:'page'::jsonb)->'has_more' AS has_more;
SELECT inventory_sync.sync_pull((:'page'::jsonb)->>'cursor', 1) AS page \gset
SELECT (:'page'::jsonb)->'changes'->0->'id' AS id, (:'page'::jsonb)->'has_more' AS has_more;
-- A cursor handed out before the purge, lying before the purged tombstone, is still refused.
SELECT inventory_sync.sync_pull(:'before_purge');
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION inventory_sync;
