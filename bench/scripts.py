"""The pgbench scripts of every variant. Each chooses an id (uniform over the table, or one of 10
hot rows) and a timestamp: now (the write wins) or, for 90% of writes in the conflict scenario,
a time before every stored row (the write loses)."""

# pgbench variables: rows, hot (1: every write on the ten hot rows), hotshare (percent: the share of
# writes on the ten hot rows when hot is 0; the rest are uniform over the table, the hot rows
# included), conflicts (percent). The single-row variants read the id; sync_push reads hot alone.
PROLOGUE = r"""
\set id random(1, :rows)
\set pick random(1, 100)
\if :hot = 1 or :pick <= :hotshare
\set id random(1, 10)
\endif
\set roll random(1, 100)
\set stale 0
\if :roll <= :conflicts
\set stale 1
\endif
"""

# A winning write is stamped now (later than every stored row); a losing one in 2000 (earlier).
TS = "CASE WHEN :stale = 1 THEN '2000-01-01 00:00:00+00'::timestamptz ELSE clock_timestamp() END"

VARIANTS = {
    "bare": PROLOGUE + f"""
INSERT INTO bench.items AS t (id, data, updated_at) VALUES (:id, '{{"stock": 5}}', {TS})
ON CONFLICT (id) DO UPDATE SET data = t.data || excluded.data, updated_at = excluded.updated_at
WHERE t.updated_at <= excluded.updated_at RETURNING t.id;
""",
    "plpgsql": PROLOGUE + f"""
SELECT bench.plpgsql_upsert(:id, '{{"stock": 5}}', {TS});
""",
    "app": PROLOGUE + f"""
BEGIN;
SELECT CASE WHEN updated_at <= {TS} THEN 1 ELSE 0 END AS wins FROM bench.items WHERE id = :id FOR UPDATE \\gset
\\if :wins = 1
UPDATE bench.items SET data = data || '{{"stock": 5}}', updated_at = {TS} WHERE id = :id;
\\else
INSERT INTO bench.journal (id, client_payload, client_ts, server_data)
SELECT :id, '{{"stock": 5}}', {TS}, data || jsonb_build_object('id', id, 'updated_at', updated_at) FROM bench.items WHERE id = :id;
\\endif
COMMIT;
""",
    "sync_upsert": PROLOGUE + f"""
SELECT inventory_sync.sync_upsert(:id, '{{"stock": 5}}', {TS});
""",
    "bare_typed": PROLOGUE + f"""
INSERT INTO bench.products_bare AS t (id, name, stock, updated_at) VALUES (:id, 'x', 5, {TS})
ON CONFLICT (id) DO UPDATE SET stock = excluded.stock, updated_at = excluded.updated_at
WHERE t.updated_at <= excluded.updated_at RETURNING t.id;
""",
    "sync_upsert_in": PROLOGUE + f"""
SELECT inventory_sync.sync_upsert_in('bench.products', :id::text, '{{"stock": 5}}', {TS});
""",
}

for size in (100, 1000):
    VARIANTS[f"sync_push_{size}"] = PROLOGUE + f"""
\\set first random(1, :rows - {size})
SELECT inventory_sync.sync_push((SELECT jsonb_agg(jsonb_build_object(
    'id', CASE WHEN :hot = 1 THEN g % 10 + 1 ELSE g END, 'payload', '{{"stock": 5}}'::jsonb,
    'client_ts', {TS}) ORDER BY g) FROM generate_series(:first, :first + {size - 1}) g));
"""

# Rows written per transaction of each variant.
ROWS_PER_XACT = {name: 1 for name in VARIANTS} | {"sync_push_100": 100, "sync_push_1000": 1000}
