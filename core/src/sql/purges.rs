//! The purges of old tombstones and old mutation ids, over every side (`Side::ALL`).

use super::{Side, C};

/// Remove tombstones older than `$1` (an interval) from the default table and the tracked
/// tables' feed, remember the feed position of the newest one removed, and answer how many.
pub fn purge_tombstones() -> String {
    // d1… : each side's change feed.
    let sides: String = Side::ALL
        .iter()
        .enumerate()
        .map(|(n, side)| {
            format!(
                "d{} AS (DELETE FROM {} c \
                   WHERE c.op OPERATOR(pg_catalog.=) 'delete' \
                     AND c.changed_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1) \
                   RETURNING c.position, c.table_id, c.row_id), ",
                n + 1,
                side.changes()
            )
        })
        .collect();
    let each: String = (1..=Side::ALL.len()).map(|n| format!(" UNION ALL SELECT * FROM d{n}")).collect();
    format!(
        "WITH d0 AS (DELETE FROM inventory_sync.inventory i \
           WHERE i.deleted AND i.changed_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1) \
           RETURNING i.position, 0 AS table_id, (i.id::pg_catalog.text COLLATE {C}) AS row_id), \
         {sides}\
         purged AS (SELECT * FROM d0{each}), \
         newest AS (SELECT DISTINCT ON (era) (p.position OPERATOR(pg_catalog.>>) 48)::pg_catalog.int4 AS era, \
             p.position, p.table_id, p.row_id FROM purged p \
           ORDER BY era, p.position DESC, p.table_id DESC, p.row_id DESC), \
         horizon AS (INSERT INTO inventory_sync.purge_horizon AS p (era, position, table_id, row_id, purged_at) \
           SELECT newest.era, newest.position, newest.table_id, newest.row_id, pg_catalog.now() FROM newest \
           ON CONFLICT (era) DO UPDATE \
             SET position = excluded.position, table_id = excluded.table_id, row_id = excluded.row_id, \
                 purged_at = excluded.purged_at \
           WHERE (excluded.position, excluded.table_id, excluded.row_id) OPERATOR(pg_catalog.>) \
                 (p.position, p.table_id, p.row_id)) \
         SELECT pg_catalog.count(*) FROM purged"
    )
}

/// Forget mutation ids applied longer than `$1` ago, from each side's mutation log; answer how
/// many.
pub fn purge_mutations() -> String {
    let parts: Vec<String> = Side::ALL
        .iter()
        .enumerate()
        .map(|(n, side)| {
            format!(
                "d{n} AS (DELETE FROM {} m \
                   WHERE m.applied_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) $1) RETURNING 1)",
                side.mutations()
            )
        })
        .collect();
    let counts: Vec<String> = (0..Side::ALL.len()).map(|n| format!("(SELECT pg_catalog.count(*) FROM d{n})")).collect();
    format!("WITH {} SELECT {}", parts.join(", "), counts.join(" OPERATOR(pg_catalog.+) "))
}
