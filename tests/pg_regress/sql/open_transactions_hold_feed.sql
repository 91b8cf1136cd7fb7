-- Transactions: keep write transactions short, and pull in a transaction of its own.
CREATE EXTENSION inventory_sync;
CREATE EXTENSION dblink;
SET TimeZone = 'UTC';
-- A second connection plays another request of the backend.
SELECT dblink_connect('other', format('dbname=%s user=%s host=%s port=%s application_name=other_request',
       current_database(), current_user, split_part(current_setting('unix_socket_directories'), ',', 1),
       current_setting('port')));
SELECT inventory_sync.sync_pull()->>'cursor' AS cursor \gset
-- A pull sees only what committed before the oldest transaction still writing began, so a pull
-- in the transaction of a push does not include the push: it comes with the next pull.
BEGIN;
SELECT inventory_sync.sync_upsert(1, '{"name": "Laptops"}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_pull(:'cursor')->'changes' AS changes;
COMMIT;
SELECT c->'id' AS id, c->'data' AS data FROM jsonb_array_elements(inventory_sync.sync_pull(:'cursor')->'changes') AS c;
SELECT inventory_sync.sync_pull(:'cursor')->>'cursor' AS cursor \gset
-- Another request's write transaction stays open (it wrote item 2, then waits for something).
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT inventory_sync.sync_upsert(2, '{"name": "Mice"}',
       '2024-03-01 09:05+00')->>'status'$$) AS other(status text);
-- Changes committed after it began wait in the feed until it ends; none is skipped.
SELECT inventory_sync.sync_upsert(3, '{"name": "Cables"}', '2024-03-01 09:10+00')->>'status' AS status;
SELECT inventory_sync.sync_pull(:'cursor') - 'cursor' AS page;
-- What holds the feed back: the transactions that have written and not ended.
SELECT application_name, state FROM pg_stat_activity
 WHERE backend_xid IS NOT NULL AND datname = current_database() ORDER BY xact_start;
SELECT dblink_exec('other', 'COMMIT');
SELECT c->'id' AS id, c->'data' AS data FROM jsonb_array_elements(inventory_sync.sync_pull(:'cursor')->'changes') AS c;
-- Settings for one transaction only, as a pooled connection wants them.
BEGIN;
SET LOCAL inventory_sync.max_clock_skew = '1h';
SELECT inventory_sync.sync_upsert(4, '{"name": "Pads"}', now() + interval '30 minutes')->>'status' AS status;
COMMIT;
SHOW inventory_sync.max_clock_skew;
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
DROP EXTENSION inventory_sync;
