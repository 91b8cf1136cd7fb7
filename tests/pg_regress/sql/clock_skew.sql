-- inventory_sync.max_clock_skew: how far client_ts may run ahead of the server clock.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
SHOW inventory_sync.max_clock_skew;
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', now())->>'status' AS status;
-- Within the margin (default 5 minutes): applied.
SELECT inventory_sync.sync_upsert(1, '{"stock": 11}', now() + interval '4 minutes')->>'status' AS status;
-- Beyond it: rejected, with what the backend needs to tell the device; the row is untouched.
SELECT a->>'status' AS status, a->>'reason' AS reason, a->'ahead_by_seconds' AS ahead_by,
       a->'max_clock_skew_seconds' AS max_skew, a->>'message' AS message,
       (a->>'client_ts')::timestamptz - (a->>'server_time')::timestamptz AS lead
  FROM inventory_sync.sync_upsert(1, '{"stock": 99}', now() + interval '2 hours') AS a;
SELECT data FROM inventory_sync.inventory WHERE id = 1;
-- The rejected write is journaled with its reason and the row it did not replace.
SELECT row_id, reason, client_payload, server_data->'stock' AS server_stock FROM inventory_sync.conflicts;
-- The setting takes units; 0 allows no lead at all; -1 turns the guard off.
SET inventory_sync.max_clock_skew = '3h';
SELECT inventory_sync.sync_upsert(1, '{"stock": 12}', now() + interval '2 hours')->>'status' AS status;
SET inventory_sync.max_clock_skew = 0;
SELECT inventory_sync.sync_upsert(1, '{"stock": 13}', now() + interval '1 second')->>'status' AS status;
SET inventory_sync.max_clock_skew = -1;
SELECT inventory_sync.sync_upsert(1, '{"stock": 14}', now() + interval '10 years')->>'status' AS status;
SET inventory_sync.max_clock_skew = -2;
\echo :LAST_ERROR_SQLSTATE
SET inventory_sync.max_clock_skew = 'a while';
\echo :LAST_ERROR_SQLSTATE
DROP EXTENSION inventory_sync;
