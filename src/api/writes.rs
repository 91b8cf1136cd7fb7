//! The write functions: one row at a time (default table and tracked tables), or a whole upload.

use pgrx::datum::{TimestampWithTimeZone, Uuid};
use pgrx::prelude::*;

use super::respond;
use crate::batch;
use crate::catalog::positions;
use crate::pg::args::RegClass;
use crate::pg::json::JsonText;
use crate::pg::jsonb::Jsonb;
use crate::pg::security::check_writable;
use crate::write::{self, Named, Sent};
use inventory_sync_core::SyncError;

/// Write one item of `inventory_sync.inventory` with last-write-wins, atomically (see
/// docs/REFERENCE.md for the answers): applied, conflict (journaled, with `server_data`),
/// rejected (clock skew) or, with merge policies, merged. With `client_id` and `mutation_id`, a
/// repeated call answers the first answer again with `"duplicate": true`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    check_writable(c"sync_upsert()");
    respond(|| {
        let id = id.ok_or(SyncError::NullArgument("id"))?;
        write::upsert(Named::Default(id), payload, Sent { client_ts, client_id, mutation_id, base_version }, base)
    })
}

/// Delete one item of `inventory_sync.inventory` with last-write-wins: the row becomes a
/// tombstone, so that older writes arriving later get a conflict showing the item as deleted.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_delete(
    id: Option<i64>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    check_writable(c"sync_delete()");
    respond(|| {
        let id = id.ok_or(SyncError::NullArgument("id"))?;
        write::delete(Named::Default(id), Sent { client_ts, client_id, mutation_id, base_version })
    })
}

/// The feed position of a change the current transaction makes now: the default of the default
/// table's `position`, so a row inserted there directly (a bulk import) enters the feed too.
#[pg_extern(volatile, parallel_unsafe)]
fn change_position() -> i64 {
    check_writable(c"change_position()");
    respond(|| Spi::connect_mut(positions::for_write))
}

/// On a Citus cluster, a row trigger (`distribute()` puts it on the default table and the change
/// feed): the row's feed position is taken on the node that stores it, from that node's era and
/// transaction, whichever node ran the statement. A write run on the coordinator (a push, a
/// tracked-table call) commits on the coordinator before the workers' prepared parts; positions of
/// the coordinator's transaction would be passed by a pull before the rows are visible there.
#[pg_trigger]
fn stamp_position<'a>(
    trigger: &'a PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    Ok(Some(respond(|| {
        let mut row = match (trigger.when(), trigger.level(), trigger.new()) {
            (Ok(PgTriggerWhen::Before), PgTriggerLevel::Row, Some(row)) => row.into_owned(),
            _ => return Err(SyncError::StampMisused),
        };
        row.set_by_name("position", Spi::connect_mut(positions::for_write)?).map_err(|_| SyncError::StampMisused)?;
        Ok(row)
    })))
}

/// The table and row a tracked-table call names.
fn named(tbl: Option<RegClass>, id: Option<String>) -> Result<Named, SyncError> {
    let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    Named::table(tbl.0, id)
}

/// `sync_upsert_in` in each of its forms, with the key as text.
fn upsert_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    payload: Option<Jsonb>,
    sent: Sent,
    base: Option<Jsonb>,
) -> Jsonb {
    check_writable(c"sync_upsert_in()");
    respond(|| write::upsert(named(tbl, id)?, payload, sent, base))
}

/// `sync_delete_in` in each of its forms, with the key as text.
fn delete_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
    base_version: Option<String>,
) -> Jsonb {
    check_writable(c"sync_delete_in()");
    respond(|| write::delete(named(tbl, id)?, Sent { client_ts, client_id, mutation_id, base_version }))
}

/// `sync_upsert` for the application's own tables: `id` is the primary key as text; `payload`
/// keys are column names, their values converted to the column types.
// The arguments are the SQL function's.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    upsert_in(tbl, id, payload, Sent { client_ts, client_id, mutation_id, base_version }, base)
}

/// `sync_delete` for the application's own tables: the row is deleted and its tombstone kept in
/// `inventory_sync.changes`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_delete_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    delete_in(tbl, id, client_ts, client_id, mutation_id, base_version)
}

/// `sync_upsert_in` with a bigint (or integer) key given as a number: what a driver sends for an
/// integer id, and what Citus needs to run the call on the node that holds the row.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe, name = "sync_upsert_in")]
fn sync_upsert_in_bigint(
    tbl: Option<RegClass>,
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    upsert_in(tbl, id.map(|i| i.to_string()), payload, Sent { client_ts, client_id, mutation_id, base_version }, base)
}

/// `sync_upsert_in` with a uuid key given as a uuid.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe, name = "sync_upsert_in")]
fn sync_upsert_in_uuid(
    tbl: Option<RegClass>,
    id: Option<Uuid>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    upsert_in(tbl, id.map(|u| u.to_string()), payload, Sent { client_ts, client_id, mutation_id, base_version }, base)
}

/// `sync_delete_in` with a bigint (or integer) key given as a number.
#[pg_extern(volatile, parallel_unsafe, name = "sync_delete_in")]
fn sync_delete_in_bigint(
    tbl: Option<RegClass>,
    id: Option<i64>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    delete_in(tbl, id.map(|i| i.to_string()), client_ts, client_id, mutation_id, base_version)
}

/// `sync_delete_in` with a uuid key given as a uuid.
#[pg_extern(volatile, parallel_unsafe, name = "sync_delete_in")]
fn sync_delete_in_uuid(
    tbl: Option<RegClass>,
    id: Option<Uuid>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base_version: default!(Option<String>, "NULL"),
) -> Jsonb {
    delete_in(tbl, id.map(|u| u.to_string()), client_ts, client_id, mutation_id, base_version)
}

/// Apply a device's whole upload: a JSON array of changes, answered with one outcome per change,
/// in order; with `atomic`, the first invalid change fails the whole call.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_push(changes: Option<Jsonb>, atomic: default!(Option<bool>, "false")) -> Jsonb {
    check_writable(c"sync_push()");
    respond(|| {
        let answer = batch::push(&batch::Batch::of_jsonb(changes)?, atomic.unwrap_or(false))?;
        Ok(Jsonb::from_text(&answer))
    })
}

/// `sync_push` for large batches: the changes as `json` and the outcomes as `json`, so that
/// neither is ever built whole as jsonb (memory stays near the size of the text).
#[pg_extern(volatile, parallel_unsafe)]
fn sync_push_json(changes: Option<JsonText>, atomic: default!(Option<bool>, "false")) -> JsonText {
    check_writable(c"sync_push_json()");
    respond(|| {
        let text = changes.map(JsonText::text).transpose()?;
        let answer = batch::push(&batch::Batch::of_text(text)?, atomic.unwrap_or(false))?;
        Ok(JsonText::from_text(&answer))
    })
}

/// On a Citus cluster, which node each change of a batch is for (see `batch::groups`), so that a
/// backend sends each node its own push with `sync_push_on`.
#[pg_extern(volatile, parallel_unsafe)]
fn push_groups(changes: Option<Jsonb>) -> Jsonb {
    respond(|| Ok(Jsonb::from_text(&batch::groups(&batch::Batch::of_jsonb(changes)?)?)))
}

/// `sync_push` of the changes of one node (a group of `push_groups`): on a Citus cluster it is
/// delegated by `node_key` and runs whole on that node; elsewhere, and with a null key, it is
/// `sync_push`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_push_on(node_key: Option<i64>, changes: Option<Jsonb>, atomic: default!(Option<bool>, "false")) -> Jsonb {
    // The key only tells Citus where to run the call (distribute() delegates it by the key).
    let _ = node_key;
    sync_push(changes, atomic)
}
