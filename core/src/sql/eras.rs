//! The statements of feed eras (`catalog::positions`): reading them, giving one, starting one
//! above every position stored. Re-exported by `sql`, like the rest.

use super::{Side, DEFAULT_TABLE};

/// The eras (number, cohort, cluster, database, and the highest previous end recorded for it:
/// several first writers may have recorded the same era), in era order.
pub const ERAS: &str = "SELECT e.era, e.cohort, e.system_identifier, e.database_oid, pg_catalog.max(e.previous_end) \
     FROM inventory_sync.eras e GROUP BY e.era, e.cohort, e.system_identifier, e.database_oid ORDER BY e.era";

/// The horizon of the statement's snapshot: the oldest transaction still running.
pub const SNAPSHOT_XMIN: &str =
    "SELECT pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::pg_catalog.text::pg_catalog.int8";

/// Serialises the givers of eras (`distribute()` against itself).
pub const ERAS_LOCK: &str = "LOCK TABLE inventory_sync.eras IN SHARE ROW EXCLUSIVE MODE";

/// The highest position stored in the default table, each side's change feed and the purge
/// horizon (those below `$4` when `below`), as the arguments of a `GREATEST`.
fn highest_positions(below: bool) -> String {
    let tables = [(DEFAULT_TABLE, "i")]
        .into_iter()
        .chain(Side::ALL.map(|side| (side.changes(), "c")))
        .chain([("inventory_sync.purge_horizon", "p")]);
    tables
        .map(|(table, a)| {
            let filter = if below { format!(" WHERE {a}.position OPERATOR(pg_catalog.<) $4") } else { String::new() };
            format!("(SELECT pg_catalog.max({a}.position) FROM {table} {a}{filter}), ")
        })
        .collect()
}

/// The highest position stored, and the next era number.
pub fn cohort_start() -> String {
    format!(
        "SELECT GREATEST({}0), \
         (SELECT COALESCE(pg_catalog.max(e.era), 0) OPERATOR(pg_catalog.+) 1 FROM inventory_sync.eras e)",
        highest_positions(false)
    )
}

/// Record era `$1` of cohort `$2` for cluster `$3` and database `$4`, after position `$5`.
pub const ERA_GIVE: &str =
    "INSERT INTO inventory_sync.eras (era, cohort, system_identifier, database_oid, previous_end) \
     VALUES ($1, $2, $3, $4, $5)";

/// Record era `$1` (a cohort of its own) for this cluster (`$2`) and database (`$3`), with the
/// highest position stored before it (below `$4`, the era's first position).
pub fn era_start() -> String {
    format!(
        "INSERT INTO inventory_sync.eras (era, cohort, system_identifier, database_oid, previous_end) \
         SELECT $1, $1, $2, $3, GREATEST({}0)",
        highest_positions(true)
    )
}
