-- Bug: sync_pull accepted a made-up cursor whose transaction id lies beyond any transaction ever
-- started (2^64-1, 2^63): it answered no changes and handed the same cursor back, so the device
-- silently never received another change. Now such a cursor is refused: 22023 "invalid cursor".
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops"}', '2024-03-01 09:00+00')->>'status' AS status;
-- A cursor is URL-safe base64 of "1:xid:table:row", or "2:purge epoch:1:xid:table:row".
SELECT translate(encode(convert_to('1:18446744073709551615:0:', 'UTF8'), 'base64'), '+/=', '-_') AS max_xid,
       translate(encode(convert_to('1:9223372036854775808:1259:x', 'UTF8'), 'base64'), '+/=', '-_') AS xid_2_63,
       translate(encode(convert_to('2:0:1:18446744073709551615:0:', 'UTF8'), 'base64'), '+/=', '-_') AS max_xid_in_epoch \gset
SELECT inventory_sync.sync_pull(:'max_xid');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(:'xid_2_63', 10);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_pull(:'max_xid_in_epoch');
\echo :LAST_ERROR_SQLSTATE
-- Real positions still pull: the start ("1:0:0:") and the cursor a pull answered.
SELECT c->'id' AS id, c->'data' AS data
  FROM jsonb_array_elements(inventory_sync.sync_pull(translate(encode(convert_to('1:0:0:', 'UTF8'), 'base64'), '+/=', '-_'))->'changes') AS c;
SELECT inventory_sync.sync_pull()->>'cursor' AS cursor \gset
SELECT inventory_sync.sync_upsert(2, '{"name": "Mice"}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT c->'id' AS id, c->'data' AS data FROM jsonb_array_elements(inventory_sync.sync_pull(:'cursor')->'changes') AS c;
DROP EXTENSION inventory_sync;
