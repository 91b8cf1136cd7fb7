-- A device's first pull of :rows items in pages of 1000, side by side with the hand-written peer:
-- a keyset query over (updated_at, id) returning the same rows as JSON. :one_transaction: the
-- items were written by one transaction (a bulk import, one big sync_push), else by many (one
-- per 100 items). Each page is timed inside the server (clock_timestamp), so client round trips
-- weigh on neither side. Prints one line per variant: pages, total ms, mean ms of the first ten
-- pages, mean ms of the last ten.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS inventory_sync CASCADE;
CREATE EXTENSION inventory_sync;
DROP SCHEMA IF EXISTS pulls CASCADE;
CREATE SCHEMA pulls;
CREATE TABLE pulls.items (id bigint PRIMARY KEY, data jsonb NOT NULL, updated_at timestamptz NOT NULL);
CREATE INDEX ON pulls.items (updated_at, id);
CREATE TABLE pulls.times (variant text, page int, ms float8);

-- The same items in both tables, written by many transactions or by one.
CREATE PROCEDURE pulls.load(n bigint, per_transaction bigint) LANGUAGE plpgsql AS $$
DECLARE first bigint := 1;
BEGIN
    WHILE first <= n LOOP
        INSERT INTO inventory_sync.inventory (id, data, updated_at)
        SELECT i, jsonb_build_object('name', 'item ' || i, 'stock', i % 100), '2024-03-01'::timestamptz + i * interval '1 second'
          FROM generate_series(first, least(n, first + per_transaction - 1)) i;
        INSERT INTO pulls.items SELECT id, data, updated_at FROM inventory_sync.inventory
         WHERE id BETWEEN first AND least(n, first + per_transaction - 1);
        COMMIT;
        first := first + per_transaction;
    END LOOP;
END $$;
CALL pulls.load(:rows, CASE WHEN :one_transaction THEN :rows ELSE 100 END);
VACUUM ANALYZE inventory_sync.inventory, pulls.items;

DO $$
DECLARE cursor text; answer jsonb; t0 timestamptz; page int := 0;
BEGIN
    LOOP
        t0 := clock_timestamp();
        answer := inventory_sync.sync_pull(cursor, 1000);
        INSERT INTO pulls.times VALUES ('sync_pull', page, extract(epoch FROM clock_timestamp() - t0) * 1000);
        cursor := answer->>'cursor';
        page := page + 1;
        EXIT WHEN NOT (answer->>'has_more')::boolean;
    END LOOP;
END $$;

DO $$
DECLARE last_ts timestamptz := '-infinity'; last_id bigint := 0; answer jsonb; t0 timestamptz; page int := 0; n int;
BEGIN
    LOOP
        t0 := clock_timestamp();
        SELECT jsonb_agg(jsonb_build_object('id', r.id, 'data', r.data, 'updated_at', r.updated_at) ORDER BY r.updated_at, r.id),
               count(*), (array_agg(r.updated_at ORDER BY r.updated_at DESC, r.id DESC))[1],
               (array_agg(r.id ORDER BY r.updated_at DESC, r.id DESC))[1]
          INTO answer, n, last_ts, last_id
          FROM (SELECT i.id, i.data, i.updated_at FROM pulls.items i
                 WHERE (i.updated_at, i.id) > (last_ts, last_id) ORDER BY i.updated_at, i.id LIMIT 1000) r;
        INSERT INTO pulls.times VALUES ('keyset', page, extract(epoch FROM clock_timestamp() - t0) * 1000);
        page := page + 1;
        EXIT WHEN n < 1000;
    END LOOP;
END $$;

\pset format unaligned
\pset tuples_only on
\pset fieldsep ' '
SELECT variant, count(*), round(sum(ms)::numeric, 2),
       round((avg(ms) FILTER (WHERE page < 10))::numeric, 3),
       round((avg(ms) FILTER (WHERE page >= (SELECT max(page) - 10 FROM pulls.times t WHERE t.variant = x.variant) AND page < (SELECT max(page) FROM pulls.times t WHERE t.variant = x.variant)))::numeric, 3)
  FROM pulls.times x GROUP BY variant ORDER BY variant;
