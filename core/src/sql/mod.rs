//! The SQL text the extension runs, built here as plain strings (no pgrx), so the builders are
//! unit-tested. Identifiers arrive already quoted (`quote_identifier`); values are never part of
//! the text: they are always `$n` parameters.
//!
//! Every function, operator and type is schema-qualified (`OPERATOR(pg_catalog.=)`), so objects a
//! user creates in another schema are never picked up, whatever the caller's `search_path`.
//!
//! Parameters shared by the conflict and rejection statements: `$1` the key (typed as the key
//! column), `$2` the payload as sent, `$3` client_ts, `$4` the table's qualified name, `$5` the
//! operation (`upsert` or `delete`), `$6` client_id, `$7` mutation_id.
//!
//! A row's side rows (its change record, its mutation ids, its journal entries) carry the row's
//! shard key, the column Citus distributes those tables by, colocated with the default table: the
//! key itself for an integer key; a journal entry of any other key a hash of its text
//! (`tracking::integer_key`). Every statement on one row's side rows names it, so that Citus sends
//! the statement to the node that holds them, which for the default table and a table colocated
//! with it is the row's node.
//! A `uuid` or `text` table's feed records and mutation ids are in tables of their own whose
//! shard key is the key itself (`tracking::Side`), colocated with the tables of that key type:
//! its statements on them take the key as the shard key parameter.

mod cluster;
mod eras;
mod purges;
pub use cluster::*;
pub use eras::*;
pub use purges::*;

pub use crate::tracking::Side;

/// The default table, `inventory_sync.inventory`.
pub const DEFAULT_TABLE: &str = "inventory_sync.inventory";

/// Collation of row ids in the change feed: bytewise, the same in every database.
const C: &str = "pg_catalog.\"C\"";

/// Text concatenation.
const CAT: &str = "OPERATOR(pg_catalog.||)";

/// The default table's stored row as a client stores it: the fields of `data` plus `id` and
/// `updated_at`; a tombstone shows `"deleted": true` instead of fields. With its version.
pub const DEFAULT_SERVER_ROW: &str = "SELECT CASE WHEN s.deleted \
       THEN pg_catalog.jsonb_build_object('id', s.id, 'updated_at', s.updated_at, 'deleted', true) \
       ELSE s.data OPERATOR(pg_catalog.||) \
            pg_catalog.jsonb_build_object('id', s.id, 'updated_at', s.updated_at) END AS data, \
       s.version \
  FROM inventory_sync.inventory s WHERE s.id OPERATOR(pg_catalog.=) $1";

/// A tracked table's stored row as a client stores it: every column; or, if the row was
/// deleted, its tombstone: the key and timestamp columns and `"deleted": true`. `key_name` and
/// `ts_name` are the columns' names as SQL literals. Parameters: `$1` the key, `$9` its shard key
/// (the journal's parameters, see `journal`), which for a `uuid` or `text` table's change record
/// is the key. With its version, from its change record (none: a row no sync function wrote).
pub fn tracked_server_row(table: &str, table_id: i32, key: &str, key_name: &str, ts_name: &str, side: Side) -> String {
    let changes = side.changes();
    let shard_key = if side.keyed_by_key() { "$1" } else { "$9" };
    format!(
        "SELECT pg_catalog.to_jsonb(s.*) AS data, {record}.version FROM {table} s \
           LEFT JOIN {changes} {record} ON {record}.shard_key OPERATOR(pg_catalog.=) {shard_key} \
            AND {record}.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND {record}.table_id OPERATOR(pg_catalog.=) {table_id} \
          WHERE s.{key} OPERATOR(pg_catalog.=) $1 \
         UNION ALL \
         SELECT pg_catalog.jsonb_build_object({key_name}, c.id, {ts_name}, c.ts, 'deleted', true), c.version \
           FROM {changes} c \
          WHERE c.shard_key OPERATOR(pg_catalog.=) {shard_key} \
            AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id} \
            AND c.op OPERATOR(pg_catalog.=) 'delete'",
        record = "r"
    )
}

/// Whether a write stamped `ts` by `by` (SQL expressions) may replace state stamped `stored_ts`
/// by `stored_by`: later wins; at equal timestamps the greater client_id (bytewise) wins when
/// both writes carry one; otherwise equal is not newer, so the write applies.
fn beats(stored_ts: &str, stored_by: &str, ts: &str, by: &str) -> String {
    format!(
        "({stored_ts} OPERATOR(pg_catalog.<) {ts} OR ({stored_ts} OPERATOR(pg_catalog.=) {ts} \
          AND ({by} IS NULL OR {stored_by} IS NULL OR ({by} COLLATE {C}) OPERATOR(pg_catalog.>=) {stored_by})))"
    )
}

/// Where the default table keeps a row's floor among its field clocks (see `merge::Stored`):
/// `updated_at` is never a key of `data`.
pub const DEFAULT_FLOOR_KEY: &str = "updated_at";

/// The check and the write in one statement, for the default table. Parameters: `$1` id, `$2`
/// payload, `$3` client_ts, `$4` client_id, `$5` the feed position, `$6` the server's clock (the
/// row's version is the later of it and one past the stored version, see `version`), and with
/// `cas` `$7` the version the row must be at (`Expected::param`). Answers whether the row was
/// created (the rest of the answer is known to the caller: for an applied write, the stored
/// `updated_at` is `client_ts`), whether the row has field clocks, which the caller then updates
/// (`DEFAULT_DROP_CLOCKS`), and the row's new version.
/// `strip`: the payload holds a reserved key (`id`, `updated_at`) to leave out of `data`; the
/// statement without it is the common one (every expression of a kept plan is set up again on
/// each execution, used or not).
///
/// `ON CONFLICT DO UPDATE` locks the existing row and evaluates the `WHERE` against its latest
/// committed version (waiting for a concurrent writer to finish first), so no interleaving lets
/// an older `client_ts` overwrite a newer one. When the `WHERE` fails, nothing is returned and
/// the row stays locked until the transaction ends. `xmax = 0` tells a fresh insert from an
/// update: the updated row version carries the lock `ON CONFLICT` took. A write newer than a
/// tombstone brings the item back with just the payload's fields; it keeps the tombstone's field
/// clocks, which hold the delete's clock as their floor (see `default_delete`). With `cas`, a
/// row that exists when the statement runs is replaced only at the expected version: a row a
/// concurrent writer inserted is never overwritten by a write that expected none (`-1`).
///
/// Written so that Citus can route it to the node holding the row: `DO UPDATE SET` uses only
/// `excluded` columns and immutable operators (`changed_at` comes from the column's default in
/// the proposed row), and `RETURNING` only columns; the answer is built by the caller.
pub fn default_upsert(strip: bool, cas: bool) -> String {
    let data = if strip { "$2 OPERATOR(pg_catalog.-) '{id,updated_at}'::pg_catalog.text[]" } else { "$2" };
    format!(
        "INSERT INTO {DEFAULT_TABLE} AS stored (id, data, updated_at, updated_by, position, version) \
         VALUES ($1, {data}, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE \
            SET data = CASE WHEN stored.deleted THEN excluded.data \
                            ELSE stored.data OPERATOR(pg_catalog.||) excluded.data END, \
                updated_at = excluded.updated_at, updated_by = excluded.updated_by, deleted = false, \
                position = excluded.position, changed_at = excluded.changed_at, {NEXT_VERSION} \
          WHERE {}{} \
         RETURNING stored.xmax OPERATOR(pg_catalog.=) 0, \
                   stored.field_clocks OPERATOR(pg_catalog.<>) '{{}}'::pg_catalog.jsonb, stored.version",
        beats("stored.updated_at", "stored.updated_by", "excluded.updated_at", "excluded.updated_by"),
        if cas { CAS } else { "" },
    )
}

/// A row's next version in `ON CONFLICT DO UPDATE` (see `version`): the proposed row's
/// (the server's clock), or one past the stored one if that is not below it.
const NEXT_VERSION: &str = "version = GREATEST(excluded.version, stored.version OPERATOR(pg_catalog.+) 1)";

/// The compare-and-set condition of a write with a `base_version` (`$7`).
const CAS: &str = " AND stored.version OPERATOR(pg_catalog.=) $7";

/// The default table's row version, locked (`$1` id): what a write with a `base_version`
/// compares first.
pub const DEFAULT_VERSION_LOCKED: &str =
    "SELECT i.version FROM inventory_sync.inventory i WHERE i.id OPERATOR(pg_catalog.=) $1 FOR UPDATE";

/// After a whole-row write to an item with field clocks: the fields it wrote drop their own
/// clocks (they now have the row's). Parameters: `$1` id, `$2` the keys written in `data`. Run
/// only for items that have field clocks, so the common write is one statement, and the keys
/// need no subquery (a kept plan initialises every subquery on each execution, taken or not).
pub const DEFAULT_DROP_CLOCKS: &str = "UPDATE inventory_sync.inventory AS stored \
      SET field_clocks = stored.field_clocks OPERATOR(pg_catalog.-) $2 \
      WHERE stored.id OPERATOR(pg_catalog.=) $1";

/// The same for a delete: the row becomes a tombstone (or is created as one, so that an older
/// write arriving later still loses). Its field clocks are the delete's clock as their floor
/// (`$4`, see `merge::floor_only`), so an item brought back by a later write still knows which
/// of its fields are older than the delete. Parameters: `$1` id, `$2` client_ts, `$3`
/// client_id, `$4` the field clocks, `$5` the feed position, `$6` the server's clock, and with
/// `cas` `$7` the expected version (as for `default_upsert`). Answers the tombstone's version
/// when it applied.
pub fn default_delete(cas: bool) -> String {
    format!(
        "INSERT INTO {DEFAULT_TABLE} AS stored \
           (id, data, updated_at, deleted, updated_by, field_clocks, position, version) \
         VALUES ($1, '{{}}'::pg_catalog.jsonb, $2, true, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE \
            SET data = '{{}}'::pg_catalog.jsonb, updated_at = excluded.updated_at, deleted = true, \
                updated_by = excluded.updated_by, field_clocks = excluded.field_clocks, \
                position = excluded.position, changed_at = excluded.changed_at, {NEXT_VERSION} \
          WHERE {}{} \
         RETURNING stored.version",
        beats("stored.updated_at", "stored.updated_by", "excluded.updated_at", "excluded.updated_by"),
        if cas { CAS } else { "" },
    )
}

/// The default table's row, locked, for a merging write (`$1` id): data, updated_at,
/// updated_by, field_clocks, deleted.
pub const DEFAULT_LOCK_FOR_MERGE: &str = "SELECT i.data, i.updated_at, i.updated_by, i.field_clocks, i.deleted \
       FROM inventory_sync.inventory i WHERE i.id OPERATOR(pg_catalog.=) $1 FOR UPDATE";

/// Write a merge's result over the default table's (locked) row. Parameters: `$1` id, `$2`
/// data, `$3` updated_at, `$4` updated_by, `$5` field_clocks, `$6` the feed position, `$7` the
/// server's clock. Answers the row's new version.
pub fn default_merge_update() -> String {
    format!(
        "UPDATE {DEFAULT_TABLE} AS stored \
            SET data = $2, updated_at = $3, updated_by = $4, field_clocks = $5, deleted = false, \
                position = $6, changed_at = pg_catalog.now(), \
                version = GREATEST($7, stored.version OPERATOR(pg_catalog.+) 1) \
          WHERE stored.id OPERATOR(pg_catalog.=) $1 RETURNING stored.version"
    )
}

/// Insert a merge's result as a new row of the default table; nothing when a concurrent
/// transaction inserted it first (the caller then merges again). Parameters as the update's.
pub fn default_merge_insert() -> String {
    format!(
        "INSERT INTO {DEFAULT_TABLE} AS stored (id, data, updated_at, updated_by, field_clocks, position, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING stored.version"
    )
}

/// A tracked row's tombstone clock, if it has a tombstone (`$1` key, `$2` its shard key): its
/// timestamp and client_id.
pub fn tracked_tombstone_clock(table_id: i32, side: Side) -> String {
    let changes = side.changes();
    format!(
        "SELECT c.ts, c.client_id FROM {changes} c \
          WHERE c.shard_key OPERATOR(pg_catalog.=) $2 AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id} \
            AND c.op OPERATOR(pg_catalog.=) 'delete'"
    )
}

/// Queue a notification of a change (`$1` the payload) on the channel `inventory_sync`
/// (`inventory_sync.notify`).
pub const NOTIFY: &str = "SELECT pg_catalog.pg_notify('inventory_sync', $1)";

/// A table's merge policies (`$1` the table).
pub const FIELD_POLICIES: &str = "SELECT p.field, p.policy FROM inventory_sync.field_policies p \
      WHERE p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1";

/// Set (`$3` not NULL) or clear a field's policy (`$1` table OID, `$2` field).
pub const SET_POLICY: &str = "INSERT INTO inventory_sync.field_policies (tbl, field, policy) \
      VALUES ($1::pg_catalog.regclass, $2, $3) \
      ON CONFLICT (tbl, field) DO UPDATE SET policy = excluded.policy";
pub const CLEAR_POLICY: &str = "DELETE FROM inventory_sync.field_policies p \
      WHERE p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND p.field OPERATOR(pg_catalog.=) $2";

/// Give table `$1` (an OID) back to its devices' clocks: forget that the server orders its writes
/// (`rules::SERVER_CLOCK`, under whichever column name it was recorded).
pub const CLEAR_SERVER_CLOCK: &str = "DELETE FROM inventory_sync.field_policies p \
      WHERE p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1 AND p.policy OPERATOR(pg_catalog.=) 'server_clock'";

// Tracked tables cannot use a single INSERT … ON CONFLICT DO UPDATE: PostgreSQL checks NOT NULL
// constraints on the proposed insert row before it looks for a conflict, so a partial update
// (`{"stock": 8}`) of a table with a NOT NULL column would fail. They update, else lock and look,
// else insert (see `catalog::Tracked`), all under a per-key advisory lock. Parameters: `$1` key,
// `$2` client_ts, `$3` client_id, `$4…` the written columns' values in order.

/// The client_id and field clocks of a tracked row's change record (`$1` key, `$2` its shard
/// key): read after the
/// row is locked, rather than as a subquery of the statement on the row, so that every statement
/// names one table (Citus routes such a statement to the node that holds the row, and the change
/// record is kept beside the row).
pub fn tracked_record_clock(table_id: i32, side: Side) -> String {
    let changes = side.changes();
    format!(
        "SELECT c.client_id, c.field_clocks FROM {changes} c \
          WHERE c.shard_key OPERATOR(pg_catalog.=) $2 AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id}"
    )
}

/// The version of a tracked row's change record (`$1` key, `$2` its shard key): the row's, or
/// its tombstone's; no row: the row was never written by a sync function (or has no row).
pub fn tracked_version(table_id: i32, side: Side) -> String {
    let changes = side.changes();
    format!(
        "SELECT c.version FROM {changes} c \
          WHERE c.shard_key OPERATOR(pg_catalog.=) $2 AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id}"
    )
}

/// Apply the write to an existing row stamped strictly earlier (or never stamped): the common
/// case, decided by the statement itself. A row stamped exactly `$2` is decided by the tie rule
/// once the row is locked (`tracked_lock`), then written by `tracked_merge_update`. At READ
/// COMMITTED, UPDATE re-checks its WHERE against the latest version of a row a concurrent
/// transaction changed. (`$3` is unused.) Answers true.
pub fn tracked_update_older(table: &str, key: &str, ts: &str, columns: &[&str]) -> String {
    format!(
        "UPDATE {table} AS stored SET {}{ts} = $2 \
          WHERE stored.{key} OPERATOR(pg_catalog.=) $1 \
            AND (stored.{ts} IS NULL OR stored.{ts} OPERATOR(pg_catalog.<) $2) RETURNING true",
        assignments(columns),
    )
}

fn assignments(columns: &[&str]) -> String {
    columns.iter().enumerate().map(|(i, col)| format!("{col} = ${}, ", i + 4)).collect()
}

/// Write into an existing row the caller has locked and decided to replace: the written
/// columns and the row's timestamp (`$2`: the write's, or for a merge the later of the stored one
/// and the write's). Answers true; nothing when row-level security lets the caller lock the row
/// but not update it.
pub fn tracked_merge_update(table: &str, key: &str, ts: &str, columns: &[&str]) -> String {
    format!(
        "UPDATE {table} AS stored SET {}{ts} = $2 WHERE stored.{key} OPERATOR(pg_catalog.=) $1 RETURNING true",
        assignments(columns),
    )
}

/// Insert the row if there is none; columns not written get their defaults. Answers true.
pub fn tracked_insert(table: &str, key: &str, ts: &str, columns: &[&str]) -> String {
    let mut names = format!("{key}, {ts}");
    let mut values = String::from("$1, $2");
    for (i, col) in columns.iter().enumerate() {
        names.push_str(&format!(", {col}"));
        values.push_str(&format!(", ${}", i + 4));
    }
    format!(
        "INSERT INTO {table} AS stored ({names}) VALUES ({values}) \
         ON CONFLICT ({key}) DO NOTHING RETURNING true"
    )
}

/// Delete the row if it is stamped strictly earlier than `$2` (or never stamped), the common
/// case; ties are decided once the row is locked. Parameters: `$1` key, `$2` client_ts. Answers
/// true.
pub fn tracked_delete_older(table: &str, key: &str, ts: &str) -> String {
    format!(
        "DELETE FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $1 \
            AND (stored.{ts} IS NULL OR stored.{ts} OPERATOR(pg_catalog.<) $2) RETURNING true"
    )
}

/// Delete a row the caller has locked and decided to replace (`$1` key). Answers true.
pub fn tracked_delete_locked(table: &str, key: &str) -> String {
    format!("DELETE FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $1 RETURNING true")
}

/// On a Citus cluster, where the table is distributed by its key: the advisory lock of one row
/// (`$1` table id, `$2` the key's hash) taken on the node that holds the row's shard (`$3` the
/// key), whichever node runs the write. Citus sends the statement whole to that shard, and the one
/// row an aggregate answers takes the lock there even when no row has the key. The row itself is
/// locked too (`FOR UPDATE`): that is what has Citus run the statement inside the write's
/// transaction on that node (a plain SELECT runs there on its own, and its lock would end with
/// it), so the lock is held until that node's part of the write commits.
pub fn tracked_lock_routed(table: &str, key: &str) -> String {
    format!(
        "SELECT pg_catalog.count(*), pg_catalog.pg_advisory_xact_lock($1, $2) \
           FROM (SELECT FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $3 FOR UPDATE) AS locked"
    )
}

/// Lock the existing row (its latest version): answers true and its timestamp, or no row.
/// Parameters: `$1` key.
pub fn tracked_lock(table: &str, key: &str, ts: &str) -> String {
    format!("SELECT true, stored.{ts} FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $1 FOR UPDATE")
}

/// The row, locked, for a merging write (`$1` key): the row as JSON and its timestamp (its
/// change record is read next, by `tracked_record_clock`).
pub fn tracked_lock_for_merge(table: &str, key: &str, ts: &str) -> String {
    format!(
        "SELECT pg_catalog.to_jsonb(stored.*), stored.{ts} \
           FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $1 FOR UPDATE"
    )
}

/// The row's tombstone, if it has one: whether a write stamped `$2` by `$3` may replace it.
/// Parameters: `$1` key, `$2` client_ts, `$3` client_id, `$4` the key's shard key.
pub fn tracked_tombstone(table_id: i32, side: Side) -> String {
    let changes = side.changes();
    format!(
        "SELECT {} FROM {changes} c \
          WHERE c.shard_key OPERATOR(pg_catalog.=) $4 AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id} \
            AND c.op OPERATOR(pg_catalog.=) 'delete' FOR UPDATE",
        beats("c.ts", "c.client_id", "$2", "$3")
    )
}

/// Record the row's latest change for the pull feed (a delete: its tombstone). Parameters: `$1`
/// key, `$2` the row's timestamp, `$3` client_id, `$4` op, `$5` field clocks: the row's clocks
/// (`given_clocks`), or else the written columns' clocks, added to the stored ones (built by the
/// caller: a subquery here would be set up again on every execution), `$6` the feed position,
/// `$7` the key's shard key, `$8` the server's clock (the row's version, see `version`).
/// Two statements rather than one `CASE`: a parameter the planner could fold would make
/// PostgreSQL's plan cache plan the statement anew on every call instead of keeping one generic
/// plan. A tracked column without a clock was never written through the sync functions. Answers
/// the row's new version. In a
/// transaction that cannot see a concurrent writer's record of the same row (REPEATABLE READ),
/// this fails with 40001, as it should.
pub fn tracked_record(table_id: i32, given_clocks: bool, side: Side) -> String {
    let clocks = if given_clocks { "$5" } else { "c.field_clocks OPERATOR(pg_catalog.||) $5" };
    let changes = side.changes();
    format!(
        "INSERT INTO {changes} AS c \
           (table_id, row_id, id, op, ts, client_id, field_clocks, position, changed_at, shard_key, version) \
         VALUES ({table_id}, $1::pg_catalog.text, \
                 pg_catalog.to_jsonb($1), $4, $2, $3, $5, $6, pg_catalog.now(), $7, $8) \
         ON CONFLICT (row_id, table_id, shard_key) DO UPDATE \
            SET id = excluded.id, op = excluded.op, ts = excluded.ts, client_id = excluded.client_id, \
                field_clocks = {clocks}, \
                position = excluded.position, changed_at = excluded.changed_at, \
                version = GREATEST(excluded.version, c.version OPERATOR(pg_catalog.+) 1) \
         RETURNING c.version"
    )
}

/// The common case of `tracked_record`: an upsert of a row that has a change record, which only
/// moves forward (a plain UPDATE sets up less than `INSERT … ON CONFLICT` on every execution).
/// Parameters as there; answers the new version, or no row when the row has no record yet.
pub fn tracked_record_update(table_id: i32, side: Side) -> String {
    let changes = side.changes();
    format!(
        "UPDATE {changes} AS c \
            SET id = pg_catalog.to_jsonb($1), op = $4, ts = $2, client_id = $3, \
                field_clocks = c.field_clocks OPERATOR(pg_catalog.||) $5, \
                position = $6, changed_at = pg_catalog.now(), \
                version = GREATEST($8, c.version OPERATOR(pg_catalog.+) 1) \
          WHERE c.shard_key OPERATOR(pg_catalog.=) $7 \
            AND c.row_id OPERATOR(pg_catalog.=) ($1::pg_catalog.text COLLATE {C}) \
            AND c.table_id OPERATOR(pg_catalog.=) {table_id} \
         RETURNING c.version"
    )
}

/// The feed position of the newest tombstone a purge removed, one per era: position, table id, row
/// id, and when that purge ran (the latest is the cursors' purge epoch); no row: never purged.
pub const PURGE_HORIZON: &str = "SELECT p.position, p.table_id, p.row_id, p.purged_at \
     FROM inventory_sync.purge_horizon p";

/// The tracked tables: table id, OID in this database and the key's column number (the caller
/// checks which it may read).
pub const FEED_TABLES: &str = "SELECT t.table_id, t.tbl::pg_catalog.oid, t.key_attnum FROM inventory_sync.tracked t";

/// The change feed's first pass (see `feed`) over `ranges` ranges of positions, at most `$1`
/// changes in position order, from the default table when `with_default`, and from the tracked
/// tables `$2` in the feed tables of the sides `sides` (table ids: those the caller may read,
/// at least one; a filter
/// rather than a join with `tracked`,
/// whose OIDs Citus would compare on other nodes, where they name other tables). Range `r` (from
/// 0) takes six arguments from `$(3 + 6r)`: the position, table id and row id it continues after,
/// the position it stays below (the horizon), and the position and id where the default table's
/// part continues (its table id, 0, comes first at every position, and its rows are in id order,
/// so that its index is on the plain columns: an expression in an index is set up and computed on
/// every write). The ranges lie one after another in position order (`Cursor::ranges`), so one
/// scan in position order walks them in turn. With one range (always, on a single server), each
/// part is one range of its index; on a Citus cluster, one statement for all of a pull's ranges
/// is one task per shard (and a part left out is a task per shard less).
/// Columns: position, table id, row id, the entry (JSON text, built by concatenation: the answer is
/// parsed as jsonb once, as a whole, and building each entry as jsonb first would cost as much
/// again; a tracked table's entry without its opening `{"table": name`, which the caller adds
/// from the system cache rather than a join with `pg_class`, a table Citus keeps on each node),
/// whether it still needs the row.
pub fn feed(with_default: bool, sides: &[Side], ranges: usize) -> String {
    // Range r's arguments: $(3+6r) position, table id and row id it continues after, below which
    // position, and where the default table's part continues (position, id).
    let arg = |r: usize, k: usize| format!("${}", 3 + 6 * r + k);
    let any =
        |term: &dyn Fn(usize) -> String| (0..ranges).map(|r| format!("({})", term(r))).collect::<Vec<_>>().join(" OR ");
    let default_ranges = any(&|r| {
        format!(
            "(i.position, i.id) OPERATOR(pg_catalog.>) ({}, {}) AND i.position OPERATOR(pg_catalog.<) {}",
            arg(r, 4),
            arg(r, 5),
            arg(r, 3)
        )
    });
    let change_ranges = any(&|r| {
        format!(
            "(c.position, c.table_id, c.row_id) OPERATOR(pg_catalog.>) ({}, {}, {} COLLATE {C}) \
             AND c.position OPERATOR(pg_catalog.<) {}",
            arg(r, 0),
            arg(r, 1),
            arg(r, 2),
            arg(r, 3)
        )
    });
    let default_part = format!(
        "(SELECT i.position, 0 AS table_id, i.id::pg_catalog.text AS row_id, i.id AS num, \
                 '{{\"table\":\"{DEFAULT_TABLE}\",\"id\":' {CAT} i.id {CAT} \
                 CASE WHEN i.deleted THEN ',\"op\":\"delete\",\"data\":null' \
                      ELSE ',\"op\":\"upsert\",\"data\":' {CAT} i.data::pg_catalog.text END {CAT} \
                 ',\"updated_at\":' {CAT} pg_catalog.to_json(i.updated_at)::pg_catalog.text {CAT} \
                 {} {CAT} '}}' AS entry, \
                 false AS needs_row \
            FROM inventory_sync.inventory i \
           WHERE {default_ranges} \
           ORDER BY i.position, i.id LIMIT $1)",
        version_key("i.version")
    );
    let tracked_part = |side: Side| {
        let changes = side.changes();
        format!(
            "(SELECT c.position, c.table_id, c.row_id, 0::pg_catalog.int8 AS num, \
                   ',\"id\":' {CAT} c.id::pg_catalog.text {CAT} ',\"op\":\"' {CAT} c.op {CAT} \
                   '\",\"data\":null,\"updated_at\":' {CAT} pg_catalog.to_json(c.ts)::pg_catalog.text {CAT} \
                   {} {CAT} '}}' AS entry, \
                   c.op OPERATOR(pg_catalog.=) 'upsert' AS needs_row \
              FROM {changes} c \
             WHERE ({change_ranges}) \
               AND c.table_id OPERATOR(pg_catalog.=) ANY ($2) \
             ORDER BY c.position, c.table_id, c.row_id LIMIT $1)",
            version_key("c.version")
        )
    };
    let parts: Vec<String> =
        with_default.then_some(default_part).into_iter().chain(sides.iter().map(|&side| tracked_part(side))).collect();
    format!(
        "SELECT f.position, f.table_id, f.row_id, f.entry, f.needs_row FROM ({}) f \
         ORDER BY f.position, f.table_id, f.num, f.row_id LIMIT $1",
        parts.join(" UNION ALL ")
    )
}

/// A feed entry's `"version"` key, from the bigint column `column`, as `version::text` writes it
/// (16 hex digits).
fn version_key(column: &str) -> String {
    format!("',\"version\":\"' {CAT} pg_catalog.lpad(pg_catalog.to_hex({column}), 16, '0') {CAT} '\"'")
}

/// A tracked table's rows by key (`$1`, the keys as text), as the caller may see them: key as
/// text, the row as JSON, its timestamp as JSON. `key_type` is the key's pg_catalog type name.
pub fn tracked_rows(table: &str, key: &str, ts: &str, key_type: &str) -> String {
    format!(
        "SELECT (s.{key}::pg_catalog.text COLLATE {C}), pg_catalog.to_jsonb(s.*), pg_catalog.to_jsonb(s.{ts}) \
           FROM {table} s \
          WHERE s.{key} OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.{key_type}[])"
    )
}

/// Claim a mutation (`$1` row id, `$2` table id, `$3` client_id, `$4` mutation_id, `$5` the
/// row's shard key, on the `uuid` and `text` sides the key): true if this is its first time. A
/// concurrent claim of the same mutation waits for this transaction.
pub fn mutation_claim(side: Side) -> String {
    format!(
        "INSERT INTO {} (row_id, table_id, client_id, mutation_id, shard_key) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
        side.mutations()
    )
}

/// Which mutation the statements below name (the claim's parameters).
const THE_MUTATION: &str =
    "m.shard_key OPERATOR(pg_catalog.=) $5 AND m.row_id OPERATOR(pg_catalog.=) ($1 COLLATE pg_catalog.\"C\") \
        AND m.table_id OPERATOR(pg_catalog.=) $2 \
        AND m.client_id OPERATOR(pg_catalog.=) $3 AND m.mutation_id OPERATOR(pg_catalog.=) $4";

/// The answer a mutation got the first time, marked as a duplicate (parameters as the claim's).
pub fn mutation_replay(side: Side) -> String {
    format!(
        "SELECT m.answer OPERATOR(pg_catalog.||) '{{\"duplicate\": true}}'::pg_catalog.jsonb \
           FROM {} m WHERE {THE_MUTATION}",
        side.mutations()
    )
}

/// Remember a mutation's answer (`$6`; the rest as the claim's).
pub fn mutation_remember(side: Side) -> String {
    format!("UPDATE {} m SET answer = $6 WHERE {THE_MUTATION} RETURNING true", side.mutations())
}

/// Forget a claimed mutation that was not applied (rejected for clock skew): the device fixes its
/// clock and sends the same mutation again, which must then be decided afresh.
pub fn mutation_forget(side: Side) -> String {
    format!("DELETE FROM {} m WHERE {THE_MUTATION} RETURNING true", side.mutations())
}

/// Journal a write that was not applied, with the stored row as a client stores it, and answer
/// that row (for the answer, built by the caller). The row is read in a fresh snapshot while we
/// hold the lock the write path took, so it is the very row version the decision was made
/// against; under row-level security it is what the caller may see (an invisible row gives NULL).
/// Answers the row and its version.
/// Parameters: `$1` the key, `$2` the payload as sent, `$3` client_ts, `$4` the table's qualified
/// name, `$5` the operation, `$6` client_id, `$7` mutation_id, `$8` the reason (`stale`,
/// `clock_skew`), `$9` the row's shard key. The journal row is an `INSERT … SELECT` joined with the row, not a subquery in
/// `VALUES` (which Citus does not run), and it returns nothing: `RETURNING` would need the right
/// to read the journal, which writers do not have.
pub fn journal(server_row: &str) -> String {
    format!(
        "WITH server AS ({server_row}), \
         journal AS (INSERT INTO inventory_sync.conflicts \
           (row_id, table_name, reason, op, client_payload, client_ts, client_id, mutation_id, server_data, shard_key) \
           SELECT $1::pg_catalog.text, $4, $8, $5, $2, $3, $6, $7, server.data, $9 \
             FROM (SELECT) AS one LEFT JOIN server ON true) \
         SELECT server.data, server.version FROM (SELECT) AS one LEFT JOIN server ON true"
    )
}

#[cfg(test)]
mod tests;
