//! ONE write path for every table. A write names its table (`Named`); `upsert` and `delete` check
//! it, resolve the table into its `Statements` (the default table or a tracked table), and send
//! it through one decision flow (`decide`: mutation ids, the clock guard, apply or journal) and,
//! when it touches a field with a merge policy, one merging loop (`merging`). The two table kinds
//! differ only in the statements they supply:
//!
//! - `default_table`: `inventory_sync.inventory`, one `INSERT … ON CONFLICT` per write;
//! - `tracked_table`: the application's tables, values converted to their columns' types.

mod decide;
mod default_table;
mod merging;
mod tracked_table;

use std::rc::Rc;

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

pub use decide::batched;
pub use default_table::default_id;
use merging::Fields;

use crate::catalog::{self, Table, Tracked};
use crate::pg::jsonb::{Jsonb, Scalar};
use crate::pg::param::Param;
use crate::pg::{lookup, subxact, xact};
use inventory_sync_core::merge;
pub use inventory_sync_core::rules::Op;
use inventory_sync_core::rules::{self, IdKey, Ordering};
use inventory_sync_core::tracking::Side;
use inventory_sync_core::version::{self, Current, Expected};
use inventory_sync_core::SyncError;

/// One client write, checked.
pub struct Write<'a> {
    pub op: Op,
    pub key: Param<'a>,
    /// The key's canonical text: the journal's and the mutation log's row id.
    pub row_id: String,
    /// Whether the key is an integer (answers show it as a number).
    pub numeric_key: bool,
    /// The row's shard key: what its journal entries (but a `uuid` or `text` row's on a Citus
    /// cluster, see `cluster::journal_key`), and on the `bigint` side its change record and
    /// mutation ids, are distributed by (see `sql`).
    pub shard_key: i64,
    /// Where its change record and mutation ids are kept.
    pub side: Side,
    /// The payload as sent (`{}` for a delete).
    pub payload: Jsonb,
    pub client_ts: TimestampWithTimeZone,
    pub client_id: Option<String>,
    pub mutation_id: Option<String>,
    /// The `base_version` it was sent with: it applies only if the row is still there.
    pub expected: Option<Expected>,
    /// Who orders its table's writes; with `Server`, `client_ts` is the server's stamp.
    pub ordering: Ordering,
}

/// What a write says of itself besides its row and payload.
pub struct Sent {
    pub client_ts: Option<TimestampWithTimeZone>,
    pub client_id: Option<String>,
    pub mutation_id: Option<String>,
    /// `base_version`, as sent.
    pub base_version: Option<String>,
}

/// The table a write names, and the row, as the caller gave them.
pub enum Named {
    /// The default table, by its bigint id.
    Default(i64),
    /// A tracked table (its OID) and the row's key as text.
    Tracked(pg_sys::Oid, String),
}

impl Named {
    /// A table named by OID: the default table by name (as sync_pull names it) is the default
    /// table, whose ids are bigints.
    pub fn table(relid: pg_sys::Oid, id: String) -> Result<Named, SyncError> {
        if relid == lookup::default_table_oid() {
            Ok(Named::Default(default_id(&id)?))
        } else {
            Ok(Named::Tracked(relid, id))
        }
    }
}

/// The table and row a write names, resolved (the one place that does): the table's statements,
/// the row, and, for a tracked table, its description (which converts an upsert's values).
struct Target<'c> {
    statements: Rc<dyn Statements>,
    tracked: Option<Rc<Tracked>>,
    row: RowKey<'c>,
}

/// The row a write names: its key as a value of the key column's type and its canonical text,
/// and where its side rows are.
struct RowKey<'c> {
    key: Param<'c>,
    row_id: String,
    numeric_key: bool,
    shard_key: i64,
    side: Side,
}

impl<'c> RowKey<'c> {
    /// The write `op` of this row, ordered as its table's writes are: by the device's
    /// `client_ts`, or stamped by the server (`Statements::stamp`).
    fn write(
        self,
        client: &mut SpiClient<'_>,
        statements: &dyn Statements,
        (op, payload): (Op, Jsonb),
        checked: Checked,
        ordering: Ordering,
    ) -> Result<Write<'c>, SyncError> {
        let RowKey { key, row_id, numeric_key, shard_key, side } = self;
        let Checked { client_ts, client_id, mutation_id, expected } = checked;
        let client_ts = match (client_ts, ordering) {
            (Some(ts), Ordering::ClientTs) => ts,
            (None, Ordering::ClientTs) => return Err(SyncError::NullArgument("client_ts")),
            // Stamped below, once the write can name its row.
            (_, Ordering::Server) => TimestampWithTimeZone::try_from(0).expect("2000-01-01 is a timestamp"),
        };
        let mut write = Write {
            op,
            key,
            row_id,
            numeric_key,
            shard_key,
            side,
            payload,
            client_ts,
            client_id,
            mutation_id,
            expected,
            ordering,
        };
        if ordering == Ordering::Server {
            write.client_ts = statements.stamp(client, &write)?;
        }
        Ok(write)
    }
}

impl<'c> Target<'c> {
    fn resolve(client: &SpiClient<'c>, named: &Named) -> Result<Target<'c>, SyncError> {
        match named {
            Named::Default(id) => Ok(Target {
                statements: default_table::default_table(),
                tracked: None,
                row: RowKey {
                    key: Param::int8(*id),
                    row_id: id.to_string(),
                    numeric_key: true,
                    shard_key: *id,
                    side: Side::Bigint,
                },
            }),
            Named::Tracked(relid, id) => {
                let tracked = catalog::get(client, *relid)?;
                let (key, row_id) = tracked_table::key(client, &tracked, id)?;
                let row = RowKey {
                    key,
                    numeric_key: tracked.numeric_key(),
                    shard_key: tracked.shard_key(&row_id),
                    side: tracked.side(),
                    row_id,
                };
                Ok(Target { statements: tracked.clone(), tracked: Some(tracked), row })
            }
        }
    }
}

/// On a distributed Citus cluster, the node group that holds the row `named` names (see
/// `catalog::cluster::group_of`).
pub fn group_of(client: &SpiClient<'_>, named: &Named) -> Result<Option<i32>, SyncError> {
    let Target { statements, row, .. } = Target::resolve(client, named)?;
    Ok(catalog::cluster::group_of(client, statements.table().oid, row.key.bind()))
}

/// An upsert's values, as its table takes them.
pub enum Values<'c> {
    /// The default table takes the payload itself; `reserved_keys`: it holds `id` or
    /// `updated_at`, which are not fields.
    Payload { reserved_keys: bool, id: i64 },
    /// A tracked table: the columns' values, by column position (ascending).
    Columns(Vec<(usize, Param<'c>)>),
}

/// What a table supplies to the write path: its journal statements and how it applies, reads
/// and writes rows.
pub trait Statements {
    fn table(&self) -> &Table;
    /// Whether a payload key is not a field (the key, the timestamp).
    fn is_reserved(&self, key: &str) -> bool;
    /// The fields an upsert sets.
    fn written_fields(&self, write: &Write<'_>, values: &Values<'_>) -> Vec<String>;
    /// Serialize this function's writes to the row, where the statements alone do not.
    fn lock_row(&self, _client: &mut SpiClient<'_>, _write: &Write<'_>) {}
    /// For a table the server orders: the write's timestamp, the server's clock or just after the
    /// row's (`rules::server_stamp`), read once the row's server-ordered writers are serialized
    /// (they all stamp first), so that the later writer always stamps later.
    fn stamp(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<TimestampWithTimeZone, SyncError>;
    /// Where the row stands, for a write with a `base_version`, locked so that it stays there
    /// until the write's own statement runs (or, for a row that does not exist yet, so that
    /// the statement meets a concurrent insert).
    fn current(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Current;
    /// Apply an upsert that merges nothing; None: the stored row (or tombstone) is newer and now
    /// locked, or hidden from the caller.
    fn upsert(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        values: &Values<'_>,
    ) -> Result<Option<Jsonb>, SyncError>;
    /// Apply a delete, leaving a tombstone; None as for `upsert`.
    fn delete(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<Option<Jsonb>, SyncError>;
    /// The stored row (or tombstone), locked, as the merge rules read it.
    fn read_for_merge(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        fields: &Fields,
    ) -> Result<Option<merge::Stored>, SyncError>;
    /// Write a merge's result; None: the write met a row the read did not see.
    fn write_merged(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        m: &merge::Merge,
        stored: Option<&merge::Stored>,
    ) -> Result<Option<Jsonb>, SyncError>;
}

/// A write's own parts, checked (`check_common`; `client_ts` once its table's ordering is known).
struct Checked {
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
    expected: Option<Expected>,
}

/// The checks every write gets: client_ts present and finite; a mutation id only with a client
/// id; a base_version that is a version (or '').
fn check_common(sent: Sent) -> Result<Checked, SyncError> {
    let Sent { client_ts, client_id, mutation_id, base_version } = sent;
    if client_ts.is_some_and(|ts| ts.is_infinity()) {
        return Err(SyncError::InfiniteTimestamp { value: "infinity" });
    }
    if client_ts.is_some_and(|ts| ts.is_neg_infinity()) {
        return Err(SyncError::InfiniteTimestamp { value: "-infinity" });
    }
    if mutation_id.is_some() && client_id.is_none() {
        return Err(SyncError::MutationWithoutClient);
    }
    let expected = base_version.as_deref().map(Expected::parse).transpose()?;
    Ok(Checked { client_ts, client_id, mutation_id, expected })
}

/// A write without `client_ts` is one only for a table the server orders (`set_ordering`): to
/// any other, it is refused here, before the write's other checks (as a missing argument is).
fn require_client_ts(checked: &Checked, named: &Named) -> Result<(), SyncError> {
    if checked.client_ts.is_some() {
        return Ok(());
    }
    let relid = match named {
        Named::Default(_) => lookup::default_table_oid(),
        Named::Tracked(relid, _) => *relid,
    };
    match Spi::connect(|client| catalog::policies(client, relid).ordering) {
        Ordering::Server => Ok(()),
        Ordering::ClientTs => Err(SyncError::NullArgument("client_ts")),
    }
}

/// The server's clock for the version of a row written now (see `inventory_sync_core::version`).
pub fn version_clock() -> i64 {
    xact::clock_micros()
}

/// The timestamp of a write the server orders to a row stamped `stored` (see `Statements::stamp`).
pub fn server_stamp(stored: Option<TimestampWithTimeZone>) -> Result<TimestampWithTimeZone, SyncError> {
    let stamp = rules::server_stamp(xact::clock_micros(), stored.map(TimestampWithTimeZone::into_inner));
    TimestampWithTimeZone::try_from(stamp).map_err(|_| SyncError::OutOfRange {
        name: "the row's timestamp",
        range: "earlier than the latest timestamp, for the server to order a write after it",
    })
}

/// The 32-bit hash of a row id that the advisory lock serializing a row's writers takes.
pub fn row_lock_hash(row_id: &str) -> i32 {
    row_id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) as i32
}

/// Apply `apply` unless the write has a `base_version` the row is no longer at (None: a
/// conflict, as for a stale write).
fn if_at_base(
    client: &mut SpiClient<'_>,
    statements: &dyn Statements,
    write: &Write<'_>,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<Option<Jsonb>, SyncError> {
    match write.expected {
        Some(expected) if !expected.matches(statements.current(client, write)) => Ok(None),
        _ => apply(client),
    }
}

/// `base`, checked to be an object when given; parsed only by a merging write.
fn check_base(base: Option<Jsonb>) -> Result<Option<Jsonb>, SyncError> {
    match base {
        Some(b) if b.kind() != "object" => Err(SyncError::BaseNotObject),
        other => Ok(other),
    }
}

impl Write<'_> {
    /// The row's shard key as its change record and mutation ids take it (see `sql`): the key
    /// itself on the `uuid` and `text` sides, else `shard_key`.
    pub fn side_key(&self) -> DatumWithOid<'_> {
        if self.side.keyed_by_key() {
            self.key.bind()
        } else {
            self.shard_key.into()
        }
    }

    /// The row's key as answers show it: a number for an integer key, else a string.
    pub fn key_json(&self) -> Scalar<'_> {
        match self.row_id.parse::<i64>() {
            Ok(n) if self.numeric_key => Scalar::Int(n),
            _ => Scalar::Text(&self.row_id),
        }
    }
}

/// The `applied` answer of a write to the row `id`, now stamped `updated_at` and at `version`:
/// with `created` for an upsert, `"deleted": true` for a delete (None). Built here rather than
/// by the statements' `RETURNING`, so that a statement returns plain columns (as Citus requires
/// of a statement it routes to another node).
pub fn applied(id: Scalar<'_>, updated_at: TimestampWithTimeZone, created: Option<bool>, version: i64) -> Jsonb {
    let last = match created {
        Some(created) => ("created", Scalar::Bool(created)),
        None => ("deleted", Scalar::Bool(true)),
    };
    let version = version::text(version);
    Jsonb::object(&[
        ("status", Scalar::Text("applied")),
        ("id", id),
        ("updated_at", Scalar::Timestamptz(updated_at)),
        ("version", Scalar::Text(&version)),
        last,
    ])
}

/// Upsert one row: last-write-wins, or merged field by field where the table has policies.
pub fn upsert(named: Named, payload: Option<Jsonb>, sent: Sent, base: Option<Jsonb>) -> Result<Jsonb, SyncError> {
    let payload = payload.ok_or(SyncError::NullArgument("payload"))?;
    let checked = check_common(sent)?;
    require_client_ts(&checked, &named)?;
    rules::check_payload_kind(&payload.kind())?;
    let mut reserved_keys = false;
    if let Named::Default(id) = named {
        let (kind, text) = payload.id_key();
        rules::check_id_key(id, IdKey::classify(kind.as_deref(), text.as_deref()))?;
        reserved_keys = kind.is_some() || payload.field("updated_at").is_some();
    }
    let base = check_base(base)?;
    Spi::connect_mut(|client| {
        let Target { statements, tracked, row } = Target::resolve(client, &named)?;
        // A value its column's domain refuses is a refusal by the table's rules, decided as one.
        let mut refused = None;
        let values = match (&named, &tracked) {
            (Named::Default(id), _) => Values::Payload { reserved_keys, id: *id },
            (Named::Tracked(_, id), Some(tracked)) => {
                let converting = || tracked_table::values(client, tracked, id, &row.key, payload);
                match subxact::noting_errors(converting, SyncError::sqlstate) {
                    (Ok(values), _) => Values::Columns(values),
                    (Err(e), noted) => {
                        refused = Some(decide::refusal(e.sqlstate(), &e.to_string(), noted).ok_or(e)?);
                        Values::Columns(Vec::new())
                    }
                }
            }
            (Named::Tracked(..), None) => unreachable!("a tracked table resolves to its description"),
        };
        let table = statements.table();
        let policies = catalog::policies(client, table.oid);
        let write = row.write(client, &*statements, (Op::Upsert, payload), checked, policies.ordering)?;
        if let Some(refused) = refused {
            return decide::decide(client, table, &write, |_| Err(refused));
        }
        let merged = &policies.fields;
        let merges =
            !merged.is_empty() && statements.written_fields(&write, &values).iter().any(|f| merged.contains_key(f));
        if merges {
            let serde_json::Value::Object(mut fields) = payload.to_value() else { unreachable!("checked") };
            fields.retain(|k, _| !statements.is_reserved(k));
            let base = base.map(|b| Jsonb::object_or_empty(Some(b)));
            return decide::decide(client, table, &write, |client| {
                if_at_base(client, &*statements, &write, |client| {
                    merging::merge_write(client, &*statements, &write, &fields, base.as_ref(), &policies.fields)
                        .map(Some)
                })
            });
        }
        decide::decide(client, table, &write, |client| {
            if_at_base(client, &*statements, &write, |client| statements.upsert(client, &write, &values))
        })
    })
}

/// Delete one row: it becomes a tombstone, so older writes arriving later lose.
pub fn delete(named: Named, sent: Sent) -> Result<Jsonb, SyncError> {
    let checked = check_common(sent)?;
    require_client_ts(&checked, &named)?;
    let payload = Jsonb::empty_object();
    Spi::connect_mut(|client| {
        let Target { statements, row, .. } = Target::resolve(client, &named)?;
        let ordering = catalog::policies(client, statements.table().oid).ordering;
        let write = row.write(client, &*statements, (Op::Delete, payload), checked, ordering)?;
        decide::decide(client, statements.table(), &write, |client| {
            if_at_base(client, &*statements, &write, |client| statements.delete(client, &write))
        })
    })
}
