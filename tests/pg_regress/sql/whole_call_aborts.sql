-- Errors that are not a change's fault abort the whole call, sync_push included: serialization
-- failures, deadlocks, timeouts, writes in read-only transactions. A second connection (dblink)
-- plays another device's backend.
CREATE EXTENSION inventory_sync;
CREATE EXTENSION dblink;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
SELECT dblink_connect('other', format('dbname=%s user=%s host=%s port=%s', current_database(),
       current_user, split_part(current_setting('unix_socket_directories'), ',', 1), current_setting('port')));
SELECT inventory_sync.sync_upsert(1, '{"stock": 10}', '2024-03-01 09:00+00')->>'status' AS status;
SELECT inventory_sync.sync_upsert(2, '{"stock": 20}', '2024-03-01 09:00+00')->>'status' AS status;
-- REPEATABLE READ: a row changed by another transaction since this one's snapshot: 40001.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
SELECT * FROM dblink('other', $$SELECT inventory_sync.sync_upsert(1, '{"stock": 11}',
       '2024-03-01 10:00+00')->>'status'$$) AS other(status text);
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 12}, "client_ts": "2024-03-01T11:00:00Z"}]');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Retried in a new transaction, the call sees the newer row and decides against it.
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 12}, "client_ts": "2024-03-01T11:00:00Z"}]');
-- The other connection holds row 2 locked in an open transaction.
SELECT dblink_exec('other', 'BEGIN');
SELECT * FROM dblink('other', $$SELECT inventory_sync.sync_upsert(2, '{"stock": 21}',
       '2024-03-01 10:00+00')->>'status'$$) AS other(status text);
-- lock_timeout: 55P03, for the whole call; change 3 is not kept either.
SET lock_timeout = '200ms';
SELECT inventory_sync.sync_push('[
  {"id": 2, "payload": {"stock": 22}, "client_ts": "2024-03-01T11:00:00Z"},
  {"id": 3, "payload": {"stock": 30}, "client_ts": "2024-03-01T11:00:00Z"}
]');
\echo :LAST_ERROR_SQLSTATE
RESET lock_timeout;
-- statement_timeout (or a cancel): 57014.
SET statement_timeout = '200ms';
SELECT inventory_sync.sync_push('[{"id": 2, "payload": {"stock": 22}, "client_ts": "2024-03-01T11:00:00Z"}]');
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
-- A deadlock: this transaction holds row 3 and waits for row 2; the other one waits for row 3.
-- PostgreSQL aborts one of them (here this one, the first to check): 40P01.
SELECT dblink_exec('other', 'SET deadlock_timeout = ''10s''');
SET deadlock_timeout = '100ms';
BEGIN;
SELECT inventory_sync.sync_upsert(3, '{"stock": 30}', '2024-03-01 11:00+00')->>'status' AS status;
SELECT dblink_send_query('other', $$SELECT inventory_sync.sync_upsert(3, '{"stock": 31}',
       '2024-03-01 11:30+00')->>'status'$$);
SELECT pg_sleep(0.2);
\set VERBOSITY terse
SELECT inventory_sync.sync_push('[{"id": 2, "payload": {"stock": 22}, "client_ts": "2024-03-01T11:00:00Z"}]');
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET deadlock_timeout;
-- The other transaction goes on once this one is gone (dblink then answers an empty result).
SELECT * FROM dblink_get_result('other') AS other(status text);
SELECT * FROM dblink_get_result('other') AS other(status text);
SELECT dblink_exec('other', 'COMMIT');
SELECT id, data FROM inventory_sync.inventory ORDER BY id;
-- In a read-only transaction (and on a hot standby) writes fail with 25006; pulls work.
BEGIN READ ONLY;
SELECT inventory_sync.sync_push('[]');
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN READ ONLY;
SELECT jsonb_array_length(inventory_sync.sync_pull()->'changes') AS pulled;
COMMIT;
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
DROP EXTENSION inventory_sync;
