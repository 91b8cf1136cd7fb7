//! Tracked tables and merge policies as each backend knows them: descriptions and statements,
//! cached per backend.
//!
//! The cache follows PostgreSQL's own rule for derived state: a relcache invalidation marks a
//! table's entry stale whenever the table changes (ALTER TABLE in any backend, and track, untrack
//! and set_policy, which send one), and the next call rebuilds it after locking the table, which
//! is when pending invalidations are processed. So a call never uses a description older than
//! the table it writes.
//!
//! - `describe`: a tracked table's description and statements, from the system catalogs;
//! - `admin`: `track`, `untrack`, `set_policy`;
//! - `positions`: feed positions and the eras they are counted in;
//! - `cluster`: `distribute()`, the extension spread over a Citus cluster;
//! - `teardown`: `undistribute()`, its tables taken back onto the coordinator.

pub mod admin;
pub mod cluster;
mod describe;
pub mod positions;
pub mod teardown;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;

use crate::pg::jsonb::Jsonb;
use crate::pg::kept::{Kept, Row};
use crate::pg::relcache::{self, Changed};
use crate::pg::{lookup, param, security, xact};
use inventory_sync_core::merge::Policy;
use inventory_sync_core::rules::{self, Ordering};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::{Column, Side};
use inventory_sync_core::SyncError;

/// What the conflict and rejection paths need of a table: its name for the journal, its OID (for
/// rights checks in this backend), its table id (for the mutation log and the feed: the same
/// after a restore), and the statement that journals a write that was not applied with the
/// stored row (`sql::journal`, for its key type and row shape).
pub struct Table {
    pub name: String,
    pub oid: pg_sys::Oid,
    pub id: i32,
    pub journal: Kept,
}

impl Table {
    /// `name` quoted and schema-qualified; `key_type` the key column's type; `server_row` the
    /// SELECT giving the stored row (or tombstone) as a client stores it, and its version, keyed
    /// by `$1`.
    pub fn new(name: String, oid: pg_sys::Oid, id: i32, key_type: pg_sys::Oid, server_row: &str) -> Self {
        let t = |oid: pg_sys::Oid| PgOid::from_untagged(oid);
        let types = vec![
            t(key_type),
            t(pg_sys::JSONBOID),
            t(pg_sys::TIMESTAMPTZOID),
            t(pg_sys::TEXTOID),
            t(pg_sys::TEXTOID),
            t(pg_sys::TEXTOID),
            t(pg_sys::TEXTOID),
            t(pg_sys::TEXTOID),
            t(pg_sys::INT8OID),
        ];
        Table { journal: Kept::new(sql::journal(server_row), types), name, oid, id }
    }
}

/// Distinct payload key sets whose upsert plans are kept per table; beyond it the table's plans
/// are dropped and rebuilt as needed. Clients send a handful of shapes (whole record, a few
/// fields), so this bound is about misuse, not normal traffic.
const MAX_PLANS_PER_TABLE: usize = 256;

/// The statements that write one set of columns.
pub struct Writes {
    /// The update of a row stamped earlier than the write: the first try.
    pub update_older: Kept,
    pub insert: Kept,
    /// The update of a row locked and decided on: a tie the write wins, or a merge.
    pub merge_update: Kept,
}

/// A tracked table as one backend knows it: its columns, key, timestamp and statements.
pub struct Tracked {
    pub table: Table,
    pub columns: Vec<Column>,
    pub key: usize,
    pub ts: usize,
    /// On a Citus cluster, for a table distributed by its key: the row's advisory lock, taken on
    /// the node that holds the row.
    pub lock_routed: Option<Kept>,
    pub lock: Kept,
    pub lock_for_merge: Kept,
    pub record_clock: Kept,
    /// The row's version, from its change record (`sql::tracked_version`).
    pub version: Kept,
    pub tombstone_clock: Kept,
    pub delete_older: Kept,
    pub delete_locked: Kept,
    pub tombstone: Kept,
    pub record: Kept,
    pub record_update: Kept,
    pub record_with_clocks: Kept,
    pub rows: Kept,
    pub(super) writes: RefCell<HashMap<Vec<usize>, Rc<Writes>>>,
}

impl Tracked {
    /// Whether the key is an integer column.
    pub fn numeric_key(&self) -> bool {
        inventory_sync_core::tracking::integer_key(self.columns[self.key].typid)
    }

    /// Where its rows' change records and mutation ids are kept.
    pub fn side(&self) -> Side {
        Side::of(self.columns[self.key].typid)
    }

    /// The shard key of the row whose key's canonical text is `row_id` (see `sql`).
    pub fn shard_key(&self, row_id: &str) -> i64 {
        if self.numeric_key() {
            row_id.parse().expect("an integer key's canonical text is its number")
        } else {
            crate::pg::hash::text_hash(row_id)
        }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The kept statements that write `columns` (positions, ascending).
    pub fn writes_for(&self, columns: &[usize]) -> Rc<Writes> {
        let mut plans = self.writes.borrow_mut();
        if let Some(writes) = plans.get(columns) {
            return writes.clone();
        }
        if plans.len() >= MAX_PLANS_PER_TABLE {
            plans.clear();
        }
        let (table, key, ts) = (&self.table.name, &self.columns[self.key].quoted, &self.columns[self.ts].quoted);
        let names: Vec<&str> = columns.iter().map(|&i| self.columns[i].quoted.as_str()).collect();
        let mut types = vec![
            PgOid::from_untagged(self.columns[self.key].typid.into()),
            PgOid::from_untagged(pg_sys::TIMESTAMPTZOID),
            PgOid::from_untagged(pg_sys::TEXTOID),
        ];
        types.extend(columns.iter().map(|&i| PgOid::from_untagged(self.columns[i].typid.into())));
        let writes = Rc::new(Writes {
            update_older: Kept::new(sql::tracked_update_older(table, key, ts, &names), types.clone()),
            merge_update: Kept::new(sql::tracked_merge_update(table, key, ts, &names), types.clone()),
            insert: Kept::new(sql::tracked_insert(table, key, ts, &names), types),
        });
        plans.insert(columns.to_vec(), writes.clone());
        writes
    }

    /// Rows by key (canonical text), as the caller may see them: key text → (row as JSON text,
    /// its write timestamp as JSON text), unparsed.
    pub fn rows_by_key(
        &self,
        client: &mut SpiClient<'_>,
        keys: Vec<String>,
    ) -> HashMap<String, (Box<serde_json::value::RawValue>, Box<serde_json::value::RawValue>)> {
        let mut out = HashMap::new();
        let table = self.rows.select_all(client, &[keys.into()]);
        for row in table {
            let key: String = row.value(1).unwrap_or_default();
            let data: Option<Jsonb> = row.value(2);
            let ts: Option<Jsonb> = row.value(3);
            if let (Some(data), Some(ts)) = (data, ts) {
                out.insert(key, (data.to_raw(), ts.to_raw()));
            }
        }
        out
    }
}

/// Run `f` as the owner of the extension's table `inventory_sync.NAME`, as a SECURITY DEFINER
/// function would. The feed and tombstones (`changes`) and the eras are written only through the
/// sync functions, after the caller's own statement on the synced table has passed its rights and
/// row-level security: a caller cannot write (or forge) the feed entry of a row it may not write,
/// nor an era that would misplace everyone's positions.
pub fn as_owner_of<R>(name: &std::ffi::CStr, f: impl FnOnce() -> R) -> R {
    security::as_user(lookup::table_owner(lookup::own_table_oid(name)), f)
}

/// A table's merge policies by field; fields not listed are `lww`.
pub type Policies = HashMap<String, Policy>;

/// What `inventory_sync.field_policies` says of one table: its fields' merge policies, and who
/// orders its writes.
pub struct TablePolicies {
    pub fields: Policies,
    pub ordering: Ordering,
}

thread_local! {
    static TABLES: RefCell<HashMap<pg_sys::Oid, Rc<Tracked>>> = RefCell::new(HashMap::new());
    static POLICIES: RefCell<HashMap<pg_sys::Oid, Rc<TablePolicies>>> = RefCell::new(HashMap::new());
    static CATALOGS_SEEN: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Drop what changed since the last look (see `pg::relcache`): what was derived from a table that
/// changed, and everything when the catalogs themselves were changed by DDL (on a Citus cluster,
/// track, untrack and set_policy change the catalogs of every node, and announce it so, see
/// `cluster::announce`).
fn drop_changed() {
    if CATALOGS_SEEN.get() != Some(relcache::current_generation()) {
        relcache::generation(lookup::own_table_oid(c"tracked"));
        relcache::generation(lookup::own_table_oid(c"field_policies"));
        TABLES.with(|t| t.borrow_mut().clear());
        POLICIES.with(|p| p.borrow_mut().clear());
        CATALOGS_SEEN.set(Some(relcache::current_generation()));
    }
    match relcache::take_changed() {
        Changed::All => {
            TABLES.with(|t| t.borrow_mut().clear());
            POLICIES.with(|p| p.borrow_mut().clear());
        }
        Changed::These(relids) => {
            TABLES.with(|t| relids.iter().for_each(|r| drop(t.borrow_mut().remove(r))));
            POLICIES.with(|p| relids.iter().for_each(|r| drop(p.borrow_mut().remove(r))));
        }
    }
}

/// The merge policies and the ordering of table `relid`, cached per backend until the table's
/// next relcache invalidation (set_policy and set_ordering send one).
pub fn policies(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Rc<TablePolicies> {
    drop_changed();
    if let Some(hit) = POLICIES.with(|p| p.borrow().get(&relid).cloned()) {
        return hit;
    }
    let mut map = Policies::new();
    let mut ordering = Ordering::ClientTs;
    let rows = client
        .select(sql::FIELD_POLICIES, None, &[param::regclass(relid)])
        .expect("inventory_sync: reading field policies failed");
    for row in rows {
        let field: String = row.value(1).unwrap_or_default();
        let policy: String = row.value(2).unwrap_or_default();
        if let Some(policy) = Policy::parse(&policy) {
            map.insert(field, policy);
        } else if policy == rules::SERVER_CLOCK {
            ordering = Ordering::Server;
        }
    }
    let map = Rc::new(TablePolicies { fields: map, ordering });
    POLICIES.with(|p| p.borrow_mut().insert(relid, map.clone()));
    map
}

/// The tracked table `relid` for a write, from the cache or freshly described. Locks the table
/// first (ROW EXCLUSIVE, as the write will anyway), which processes pending invalidations.
pub fn get(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Rc<Tracked>, SyncError> {
    get_locked(client, relid, pg_sys::RowExclusiveLock)
}

/// The same for reading (ACCESS SHARE, which a hot standby allows).
pub fn get_for_read(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Rc<Tracked>, SyncError> {
    get_locked(client, relid, pg_sys::AccessShareLock)
}

fn get_locked(client: &SpiClient<'_>, relid: pg_sys::Oid, lockmode: u32) -> Result<Rc<Tracked>, SyncError> {
    xact::lock_relation(relid, lockmode);
    drop_changed();
    if let Some(hit) = TABLES.with(|t| t.borrow().get(&relid).cloned()) {
        return Ok(hit);
    }
    let tracked = Rc::new(describe::load(client, relid)?);
    TABLES.with(|t| t.borrow_mut().insert(relid, tracked.clone()));
    Ok(tracked)
}
