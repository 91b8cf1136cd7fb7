-- Bug: track() accepted a temporary table. Its tracking row outlived the session (a temporary
-- table dropped at session end fires no drop event), pointing at an OID a later table may reuse.
-- Now track() refuses it with 42809 and tracks nothing; unlogged tables are still tracked.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TEMP TABLE isync_bug_scratch (id bigint PRIMARY KEY, note text, updated_at timestamptz);
-- The message names the session's temporary schema (pg_temp_N, N varies).
DO $$
BEGIN
    PERFORM inventory_sync.track('isync_bug_scratch');
    RAISE NOTICE 'tracked';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE '%: %', SQLSTATE, regexp_replace(SQLERRM, 'pg_temp_\d+', 'pg_temp_N');
END $$;
\set VERBOSITY sqlstate
SELECT inventory_sync.track('pg_temp.isync_bug_scratch', 'updated_at');
SELECT inventory_sync.sync_upsert_in('isync_bug_scratch', '1', '{"note": "x"}', '2024-03-01 10:00+00');
\set VERBOSITY default
SELECT count(*) AS tracked FROM inventory_sync.tracked;
SELECT count(*) AS rows FROM isync_bug_scratch;
CREATE UNLOGGED TABLE isync_bug_cache (id bigint PRIMARY KEY, note text, updated_at timestamptz);
SELECT inventory_sync.track('isync_bug_cache');
SELECT table_name FROM inventory_sync.tracked_tables;
DROP TABLE isync_bug_scratch, isync_bug_cache;
DROP EXTENSION inventory_sync;
