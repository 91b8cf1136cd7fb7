//! Administration: putting tables under sync, merge policies, and purging old sync state.

use pgrx::datum::Interval;
use pgrx::prelude::*;

use super::respond;
use crate::catalog::admin;
use crate::pg::args::{Name, RegClass};
use crate::pg::security::check_writable;
use inventory_sync_core::merge::Policy;
use inventory_sync_core::rules::Ordering;
use inventory_sync_core::{sql, SyncError};

/// Put an existing table under sync. It needs a single-column primary key (bigint, integer, uuid
/// or text) and a `timestamptz` column holding each row's write timestamp (`ts_column`, default
/// `updated_at`). Only the table's owner may track it. Tracking again changes the column.
#[pg_extern(volatile, parallel_unsafe)]
fn track(tbl: Option<RegClass>, ts_column: default!(Option<Name>, "'updated_at'")) {
    check_writable(c"track()");
    respond(|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        let ts = ts_column.ok_or(SyncError::NullArgument("ts_column"))?;
        Spi::connect_mut(|client| admin::track(client, tbl.0, &ts.0))
    })
}

/// Take a table out of sync (its rows and journal entries stay). Only the table's owner may.
#[pg_extern(volatile, parallel_unsafe)]
fn untrack(tbl: Option<RegClass>) {
    check_writable(c"untrack()");
    respond(|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        Spi::connect_mut(|client| admin::untrack(client, tbl.0))
    })
}

/// Set how a field merges: `lww`, `field_lww`, `delta` or `server_wins`. For the default table a
/// field is a key of `data`; for a tracked table, a column. Only the table's owner may.
#[pg_extern(volatile, parallel_unsafe)]
fn set_policy(tbl: Option<RegClass>, field: Option<String>, policy: Option<String>) {
    check_writable(c"set_policy()");
    respond(|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        let field = field.ok_or(SyncError::NullArgument("field"))?;
        let policy = policy.ok_or(SyncError::NullArgument("policy"))?;
        let policy = Policy::parse(&policy).ok_or(SyncError::UnknownPolicy(policy))?;
        Spi::connect_mut(|client| admin::set_policy(client, tbl.0, &field, policy))
    })
}

/// Set who orders a table's writes: `client_ts` (the devices' clocks, the default) or `server`
/// (arrival order; conflicts only from `base_version`). The default table or a tracked table;
/// only its owner may.
#[pg_extern(volatile, parallel_unsafe)]
fn set_ordering(tbl: Option<RegClass>, ordering: Option<String>) {
    check_writable(c"set_ordering()");
    respond(|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        let ordering = ordering.ok_or(SyncError::NullArgument("ordering"))?;
        let ordering = Ordering::parse(&ordering).ok_or(SyncError::UnknownOrdering(ordering))?;
        Spi::connect_mut(|client| admin::set_ordering(client, tbl.0, ordering))
    })
}

/// Spread the extension over a Citus cluster, on its coordinator: its tables distributed (once),
/// and an era of its own for every node, which writes there need (docs/SCALING.md). Run it again
/// after adding a node. Answers the cohort of eras it gave and each node's era.
#[pg_extern(volatile, parallel_unsafe)]
fn distribute() -> crate::pg::jsonb::Jsonb {
    check_writable(c"distribute()");
    respond(|| Spi::connect_mut(crate::catalog::cluster::distribute))
}

/// After `distribute()`: spread one more table over the Citus cluster by its key, colocated with
/// the rows of its key type, so that it can be tracked and its calls run on the node of each row.
/// Answers the table, and the column and colocation it was distributed by.
#[pg_extern(volatile, parallel_unsafe, name = "distribute")]
fn distribute_table(tbl: Option<RegClass>) -> crate::pg::jsonb::Jsonb {
    check_writable(c"distribute()");
    respond(|| {
        let relid = tbl.ok_or(SyncError::NullArgument("tbl"))?.0;
        Spi::connect_mut(|client| crate::catalog::cluster::distribute_table(client, relid))
    })
}

/// Take the extension's tables back from a Citus cluster's workers onto its coordinator, rows
/// and all (before `DROP EXTENSION`, or to leave Citus): from then on it runs there as on a single
/// server. Answers the tables taken back and the coordinator's new era.
#[pg_extern(volatile, parallel_unsafe)]
fn undistribute() -> crate::pg::jsonb::Jsonb {
    check_writable(c"undistribute()");
    respond(|| Spi::connect_mut(crate::catalog::teardown::undistribute))
}

/// Run a purge statement (`$1` the age) and answer how many rows it removed.
fn purge(older_than: Option<Interval>, statement: &str) -> i64 {
    respond(|| {
        let interval = older_than.ok_or(SyncError::NullArgument("older_than"))?;
        if interval < Interval::new(0, 0, 0).expect("the zero interval") {
            return Err(SyncError::OutOfRange { name: "older_than", range: "a positive interval" });
        }
        Ok(Spi::connect_mut(|client| {
            client
                .update(statement, None, &[interval.into()])
                .expect("inventory_sync: purging failed")
                .first()
                .get_one::<i64>()
                .expect("inventory_sync: a purge answers a count")
                .unwrap_or(0)
        }))
    })
}

/// Remove tombstones older than `older_than` (by the server time of the delete), from the
/// default table and the tracked tables; answers how many were removed. A device whose last pull
/// is older than the purge must pull again from the beginning.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_tombstones(older_than: Option<Interval>) -> i64 {
    check_writable(c"purge_tombstones()");
    purge(older_than, &sql::purge_tombstones())
}

/// Forget mutation ids applied more than `older_than` ago (a retry after that is applied again);
/// answers how many were forgotten.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_mutations(older_than: Option<Interval>) -> i64 {
    check_writable(c"purge_mutations()");
    purge(older_than, &sql::purge_mutations())
}
