//! The SQL-facing functions: thin wrappers that check arguments, hand the write to the engine
//! and raise errors with their SQLSTATE. They run with the caller's rights (SECURITY INVOKER):
//! table grants and row-level security apply.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::{self, PgOid};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog;
use crate::convert;
use crate::engine::{self, Op, Param, Table, Write};
use crate::error::SyncError;
use crate::rules;
use crate::sql;
use crate::storage::Kept;
use crate::types::{answers_in, classify_id_key, Jsonb, Name, RegClass, Scalar};

/// The default table's statements, built on first use in this backend.
struct Default {
    table: Table,
    upsert: Kept,
    /// The upsert for payloads holding a reserved key, which it leaves out of `data`.
    upsert_stripping: Kept,
    delete: Kept,
    lock_for_merge: Kept,
    merge_update: Kept,
    merge_insert: Kept,
}

thread_local! {
    static DEFAULT: RefCell<Option<Rc<Default>>> = const { RefCell::new(None) };
}

/// The OID of `inventory_sync.inventory`, looked up on every call (two syscache probes), so a
/// re-created extension is never confused with the one a backend first saw.
pub fn default_table_oid() -> pg_sys::Oid {
    own_table_oid(c"inventory")
}

/// The OID of the extension's table `inventory_sync.NAME`.
pub fn own_table_oid(name: &std::ffi::CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups by name.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"inventory_sync".as_ptr(), false);
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    }
}

/// A default-table id given as text (by the tracked-table calls and sync_push).
pub fn default_id(text: &str) -> Result<i64, SyncError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| SyncError::BadChange(format!("id {text} is not a bigint, as the default table's ids are")))
}

/// The default table's statements; built again if the extension was dropped and created again
/// in this backend (the table's OID changed).
fn default_table() -> Rc<Default> {
    let oid = default_table_oid();
    DEFAULT.with(|cell| {
        let mut cell = cell.borrow_mut();
        match &*cell {
            Some(d) if d.table.oid == oid => d.clone(),
            _ => {
                let int8 = PgOid::from_untagged(pg_sys::INT8OID);
                let jsonb = PgOid::from_untagged(pg_sys::JSONBOID);
                let ts = PgOid::from_untagged(pg_sys::TIMESTAMPTZOID);
                let text = PgOid::from_untagged(pg_sys::TEXTOID);
                let d = Rc::new(Default {
                    table: Table::new(
                        sql::DEFAULT_TABLE.to_string(),
                        oid,
                        pg_sys::INT8OID,
                        sql::DEFAULT_SERVER_ROW,
                    ),
                    upsert: Kept::new(sql::default_upsert(false), vec![int8, jsonb, ts, text]),
                    upsert_stripping: Kept::new(sql::default_upsert(true), vec![int8, jsonb, ts, text]),
                    delete: Kept::new(sql::default_delete(), vec![int8, ts, text]),
                    lock_for_merge: Kept::new(sql::DEFAULT_LOCK_FOR_MERGE.into(), vec![int8]),
                    merge_update: Kept::new(sql::default_merge_update(), vec![int8, jsonb, ts, text, jsonb]),
                    merge_insert: Kept::new(sql::default_merge_insert(), vec![int8, jsonb, ts, text, jsonb]),
                });
                *cell = Some(d.clone());
                d
            }
        }
    })
}

/// Write one item of `inventory_sync.inventory` with last-write-wins, atomically.
///
/// - no row with `id`: insert it; answers `{"status": "applied", "id", "updated_at", "created": true}`;
/// - stored `updated_at` later than `client_ts`: nothing is written to the row, the write goes to
///   `inventory_sync.conflicts`; answers `{"status": "conflict", "id", "server_data"}`;
/// - otherwise (equal counts as not newer): `payload` is merged into `data` key by key and
///   `updated_at` becomes `client_ts`; answers `applied` with `"created": false`;
/// - `client_ts` beyond `now()` + `inventory_sync.max_clock_skew`: journaled, not applied;
///   answers `{"status": "rejected", "reason": "clock_skew", …}`.
///
/// With `client_id` and `mutation_id`, a repeated call answers the first answer again with
/// `"duplicate": true` and applies nothing.
///
/// Keys with a merge policy (`set_policy`) are merged field by field; `base` holds, for `delta`
/// fields, the values the device started from. Such a write may also answer
/// `{"status": "merged", "applied": [...], "lost": [...], "server_data"}`.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
) -> Jsonb {
    engine::check_writable(c"sync_upsert()");
    answers_in(|| upsert_default(id, payload, client_ts, client_id, mutation_id, base)).unwrap_or_else(|e| e.raise())
}

/// `base`, checked to be an object when given; parsed only by a merging write (`base_fields`).
fn base_map(base: Option<Jsonb>) -> Result<Option<Jsonb>, SyncError> {
    match base {
        Some(b) if b.kind() != "object" => Err(SyncError::BaseNotObject),
        other => Ok(other),
    }
}

/// `base`'s fields, for a merging write.
fn base_fields(base: Option<Jsonb>) -> Option<serde_json::Map<String, serde_json::Value>> {
    base.map(|b| Jsonb::object_or_empty(Some(b)))
}

/// Whether a write touches a field with a merge policy, and so takes the merging path.
fn merges(policies: &catalog::Policies, keys: impl IntoIterator<Item = impl AsRef<str>>) -> bool {
    !policies.is_empty() && keys.into_iter().any(|k| policies.contains_key(k.as_ref()))
}

pub fn upsert_default(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
    base: Option<Jsonb>,
) -> Result<Jsonb, SyncError> {
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    let (payload, client_ts) = engine::check_write(payload, client_ts, &client_id, &mutation_id)?;
    let (kind, text) = payload.id_key();
    rules::check_id_key(id, classify_id_key(kind.as_deref(), text.as_deref()))?;
    let reserved_keys = kind.is_some() || payload.field("updated_at").is_some();
    let base = base_map(base)?;
    let write = default_write(Op::Upsert, id, payload, client_ts, client_id, mutation_id);
    let d = default_table();
    Spi::connect_mut(|client| {
        let policies = catalog::policies(client, d.table.oid);
        // Only the payload's keys are read to choose the path: a write that merges nothing
        // never parses its values (which may nest deeper than a merge would read).
        let merging = !policies.is_empty()
            && merges(&policies, payload.entries().expect("checked: an object").into_keys().filter(|k| k != "id" && k != "updated_at"));
        if merging {
            let serde_json::Value::Object(mut fields) = payload.to_value() else { unreachable!("checked") };
            fields.remove("id");
            fields.remove("updated_at");
            let base = base_fields(base);
            return engine::decide(client, &d.table, &write, |client| {
                merge_default(client, &d, &write, id, &fields, base.as_ref(), &policies).map(Some)
            });
        }
        let args = [id.into(), payload.into(), client_ts.into(), write.client_id.as_deref().into()];
        let upsert = if reserved_keys { &d.upsert_stripping } else { &d.upsert };
        engine::decide(client, &d.table, &write, |client| {
            Ok(upsert.run::<bool>(client, &args).map(|created| {
                Jsonb::object(&[
                    ("status", Scalar::Text("applied")),
                    ("id", Scalar::Int(id)),
                    ("updated_at", Scalar::Timestamptz(client_ts)),
                    ("created", Scalar::Bool(created)),
                ])
            }))
        })
    })
}

/// The default table's merging path: lock the row, merge field by field, write, answer.
fn merge_default(
    client: &mut SpiClient<'_>,
    d: &Default,
    write: &Write,
    id: i64,
    fields: &serde_json::Map<String, serde_json::Value>,
    base: Option<&serde_json::Map<String, serde_json::Value>>,
    policies: &catalog::Policies,
) -> Result<Jsonb, SyncError> {
    use crate::merge;
    for _ in 0..engine::MAX_ROUNDS {
        let mut stored = None;
        for row in d.lock_for_merge.run_all(client, &[id.into()]) {
            let mut clocks = Jsonb::object_or_empty(row.get::<Jsonb>(4).ok().flatten());
            let floor = merge::take_floor(&mut clocks, FLOOR_KEY);
            stored = Some(merge::Stored {
                fields: Jsonb::object_or_empty(row.get::<Jsonb>(1).ok().flatten()),
                row: merge::Clock {
                    ts: engine::clock_micros(row.get::<TimestampWithTimeZone>(2).ok().flatten()),
                    by: row.get::<String>(3).ok().flatten(),
                },
                clocks,
                deleted: row.get::<bool>(5).ok().flatten().unwrap_or(false),
                implicit_clocks: true,
                floor,
            });
        }
        let m = engine::merge_write(stored.as_ref(), write, fields, base, policies)?;
        if m.status == merge::Status::Conflict {
            return Ok(engine::finish_merge(client, &d.table, write, fields, &m, None));
        }
        let args = [
            id.into(),
            Jsonb::from_object(&m.fields).into(),
            engine::timestamp(m.row.ts).into(),
            m.row.by.as_deref().into(),
            Jsonb::from_object(&merge::clocks_with_floor(&m, FLOOR_KEY)).into(),
        ];
        let written = if stored.is_some() { d.merge_update.run::<Jsonb>(client, &args) } else { d.merge_insert.run::<Jsonb>(client, &args) };
        if let Some(written) = written {
            return Ok(engine::finish_merge(client, &d.table, write, fields, &m, Some(written)));
        }
        // A concurrent transaction inserted the row after we looked: merge again.
    }
    Err(SyncError::Unsettled { table: d.table.name.clone(), rounds: engine::MAX_ROUNDS })
}

fn default_write(
    op: Op,
    id: i64,
    payload: Jsonb,
    client_ts: TimestampWithTimeZone,
    client_id: Option<String>,
    mutation_id: Option<String>,
) -> Write {
    Write {
        op,
        key: Param { datum: Some(pg_sys::Datum::from(id)), oid: pg_sys::INT8OID },
        row_id: id.to_string(),
        payload,
        client_ts,
        client_id,
        mutation_id,
    }
}

/// Where the default table keeps a row's floor among its field clocks (see `merge::Stored`):
/// `updated_at` is never a key of `data`.
const FLOOR_KEY: &str = "updated_at";

/// The field clocks of an item brought back after a delete (by a write that merges nothing):
/// the delete's clock as the floor of the fields not written since. Used by the default table's
/// upsert statement.
#[pg_extern(immutable, parallel_safe)]
fn floor_clocks(deleted_at: Option<TimestampWithTimeZone>, deleted_by: Option<String>) -> Jsonb {
    let Some(ts) = deleted_at else { return Jsonb::empty_object() };
    let clock = crate::merge::Clock { ts: ts.into_inner(), by: deleted_by };
    Jsonb::from_object(&crate::merge::floor_only(FLOOR_KEY, &clock))
}

/// The field clocks `clocks` without those of the fields `data` sets: written by a whole-row
/// write, those fields now have the row's clock. Used by the default table's upsert statement.
#[pg_extern(immutable, parallel_safe, strict)]
fn clocks_without(clocks: Jsonb, data: Jsonb) -> Jsonb {
    let (Some(written), Some(mut kept)) = (data.entries(), clocks.entries()) else {
        return clocks;
    };
    kept.retain(|field, _| !written.contains_key(field));
    Jsonb::from_serialize(&kept)
}

/// Delete one item of `inventory_sync.inventory` with last-write-wins: the row becomes a
/// tombstone (`"deleted": true`), so that older writes arriving later get a conflict showing the
/// item as deleted. A delete older than the stored row is a conflict and removes nothing.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_delete(
    id: Option<i64>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
) -> Jsonb {
    engine::check_writable(c"sync_delete()");
    answers_in(|| delete_default(id, client_ts, client_id, mutation_id)).unwrap_or_else(|e| e.raise())
}

pub fn delete_default(
    id: Option<i64>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
) -> Result<Jsonb, SyncError> {
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    let client_ts = engine::check_common(client_ts, &client_id, &mutation_id)?;
    let write = default_write(Op::Delete, id, Jsonb::empty_object(), client_ts, client_id, mutation_id);
    let d = default_table();
    Spi::connect_mut(|client| {
        let args = [id.into(), client_ts.into(), write.client_id.as_deref().into()];
        engine::decide(client, &d.table, &write, |client| Ok(d.delete.run(client, &args)))
    })
}

/// Write one row of a tracked table with last-write-wins, atomically: `sync_upsert` for the
/// application's own tables. `id` is the primary key as text; `payload` keys are column names,
/// their values converted to the column types. Answers as `sync_upsert` does, with `server_data`
/// the row as JSON.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
    base: default!(Option<Jsonb>, "NULL"),
) -> Jsonb {
    engine::check_writable(c"sync_upsert_in()");
    answers_in(|| upsert_tracked(tbl, id, payload, client_ts, client_id, mutation_id, base)).unwrap_or_else(|e| e.raise())
}

pub fn upsert_tracked(
    tbl: Option<RegClass>,
    id: Option<String>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
    base: Option<Jsonb>,
) -> Result<Jsonb, SyncError> {
    let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    if tbl.0 == default_table_oid() {
        // The default table by name (as sync_pull names it): its own call.
        return upsert_default(Some(default_id(&id)?), payload, client_ts, client_id, mutation_id, base);
    }
    let (payload, client_ts) = engine::check_write(payload, client_ts, &client_id, &mutation_id)?;
    let base = base_map(base)?;
    Spi::connect_mut(|client| {
        let tracked = catalog::get(client, tbl.0)?;
        let (key, row_id) = tracked_key(&tracked, &id)?;
        let values = tracked_values(&tracked, &id, key, payload)?;
        let policies = catalog::policies(client, tbl.0);
        let write = Write { op: Op::Upsert, key, row_id, payload, client_ts, client_id, mutation_id };
        if merges(&policies, values.iter().map(|(pos, _)| tracked.columns[*pos].name.as_str())) {
            let serde_json::Value::Object(mut fields) = payload.to_value() else { unreachable!("checked") };
            fields.remove(&tracked.columns[tracked.key].name);
            let base = base_fields(base);
            return engine::decide(client, &tracked.table, &write, |client| {
                tracked.merge(client, &write, &fields, base.as_ref(), &policies).map(Some)
            });
        }
        engine::decide(client, &tracked.table, &write, |client| tracked.upsert(client, &write, &values))
    })
}

/// Delete one row of a tracked table with last-write-wins: the row is deleted and its tombstone
/// kept in `inventory_sync.changes`, so that older writes arriving later get a conflict showing
/// the row as deleted.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_delete_in(
    tbl: Option<RegClass>,
    id: Option<String>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: default!(Option<String>, "NULL"),
    mutation_id: default!(Option<String>, "NULL"),
) -> Jsonb {
    engine::check_writable(c"sync_delete_in()");
    answers_in(|| delete_tracked(tbl, id, client_ts, client_id, mutation_id)).unwrap_or_else(|e| e.raise())
}

pub fn delete_tracked(
    tbl: Option<RegClass>,
    id: Option<String>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: Option<String>,
    mutation_id: Option<String>,
) -> Result<Jsonb, SyncError> {
    let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    if tbl.0 == default_table_oid() {
        return delete_default(Some(default_id(&id)?), client_ts, client_id, mutation_id);
    }
    let client_ts = engine::check_common(client_ts, &client_id, &mutation_id)?;
    Spi::connect_mut(|client| {
        let tracked = catalog::get(client, tbl.0)?;
        let (key, row_id) = tracked_key(&tracked, &id)?;
        let payload = Jsonb::empty_object();
        let write = Write { op: Op::Delete, key, row_id, payload, client_ts, client_id, mutation_id };
        engine::decide(client, &tracked.table, &write, |client| tracked.delete(client, &write))
    })
}

/// The `id` argument as a value of the key column's type, and its canonical text.
fn tracked_key(tracked: &catalog::Tracked, id: &str) -> Result<(Param, String), SyncError> {
    let col = &tracked.columns[tracked.key];
    let datum = convert::to_datum(Some(id), col.typid, col.typmod, &col.name, &tracked.table.name)?
        .expect("a non-null input gave a null key");
    Ok((Param { datum: Some(datum), oid: col.typid }, convert::canonical_text(datum, col.typid)))
}

/// The payload's values, converted to their columns' types, by column position (ascending).
fn tracked_values(
    tracked: &catalog::Tracked,
    id: &str,
    key: Param,
    payload: Jsonb,
) -> Result<Vec<(usize, Param)>, SyncError> {
    let table = &tracked.table.name;
    let Some(fields) = payload.entries() else {
        unreachable!("check_write accepted a payload that is not an object")
    };
    let mut values: Vec<(usize, Param)> = Vec::with_capacity(fields.len());
    for (name, raw) in &fields {
        let Some(pos) = tracked.column(name) else {
            return Err(SyncError::UnknownKey { key: name.clone(), table: table.clone() });
        };
        let col = &tracked.columns[pos];
        // A json or jsonb column takes the value's text as it is, at any depth.
        let text = if col.shape == convert::Shape::Json {
            (raw.get() != "null").then(|| raw.get().to_string())
        } else {
            let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(|_| SyncError::NestedTooDeep)?;
            convert::input_text(&value, col.shape)
        };
        if pos == tracked.key {
            // The key may repeat the id argument (clients send whole records), never differ.
            let same = match (&text, key.datum) {
                (Some(t), Some(k)) => {
                    let given = convert::to_datum(Some(t), col.typid, col.typmod, &col.name, table)?;
                    given.map(|g| convert::canonical_text(g, col.typid))
                        == Some(convert::canonical_text(k, col.typid))
                }
                _ => text.is_none(),
            };
            if !same {
                return Err(SyncError::IdMismatch {
                    column: col.name.clone(),
                    id: id.to_string(),
                    key: raw.get().to_string(),
                });
            }
            continue;
        }
        if pos == tracked.ts {
            return Err(SyncError::TimestampKey { key: name.clone(), table: table.clone() });
        }
        if col.generated {
            return Err(SyncError::GeneratedKey { key: name.clone(), table: table.clone() });
        }
        let datum = convert::to_datum(text.as_deref(), col.typid, col.typmod, &col.name, table)?;
        values.push((pos, Param { datum, oid: col.typid }));
    }
    values.sort_by_key(|(pos, _)| *pos);
    Ok(values)
}

/// Put an existing table under sync. It needs a single-column primary key (bigint, integer, uuid
/// or text) and a `timestamptz` column holding each row's write timestamp (`ts_column`, default
/// `updated_at`). Only the table's owner may track it. Tracking again changes the column.
#[pg_extern(volatile, parallel_unsafe)]
fn track(tbl: Option<RegClass>, ts_column: default!(Option<Name>, "'updated_at'")) {
    engine::check_writable(c"track()");
    let result = (|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        let ts = ts_column.ok_or(SyncError::NullArgument("ts_column"))?;
        Spi::connect_mut(|client| catalog::track(client, tbl.0, &ts.0))
    })();
    result.unwrap_or_else(|e| e.raise())
}

/// Take a table out of sync (its rows and journal entries stay). Only the table's owner may.
#[pg_extern(volatile, parallel_unsafe)]
fn untrack(tbl: Option<RegClass>) {
    engine::check_writable(c"untrack()");
    let result = (|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        Spi::connect_mut(|client| catalog::untrack(client, tbl.0))
    })();
    result.unwrap_or_else(|e| e.raise())
}

/// Apply a device's whole upload: `changes` is a JSON array of
/// `{"op": "upsert"|"delete", "table": "schema.name", "id", "payload", "client_ts", "client_id",
/// "mutation_id"}` (`op` defaults to upsert, no `table` means the default table). Answers a JSON
/// array with one outcome per change, in order; an invalid change gets
/// `{"status": "error", "id", "sqlstate", "message"}` while the others proceed, unless `atomic`,
/// when the first invalid change fails the whole call.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_push(changes: Option<Jsonb>, atomic: default!(Option<bool>, "false")) -> Jsonb {
    engine::check_writable(c"sync_push()");
    answers_in(|| crate::batch::push(changes, atomic.unwrap_or(false))).unwrap_or_else(|e| e.raise())
}

/// The changes after the cursor `since` (NULL: from the beginning), at most `lim`: upserts with
/// the row's current data and deletes (tombstones), from the default table and every tracked
/// table the caller may read. Answers `{"changes": [...], "cursor": "...", "has_more": bool}`;
/// pass `cursor` to the next call. A change is never skipped, including one made by a
/// transaction still open during an earlier pull.
#[pg_extern(stable, parallel_safe)]
fn sync_pull(since: default!(Option<String>, "NULL"), lim: default!(Option<i32>, "1000")) -> Jsonb {
    let result = answers_in(|| {
        let lim = lim.ok_or(SyncError::NullArgument("lim"))?;
        Spi::connect_mut(|client| crate::feed::pull(client, since.as_deref(), lim))
    });
    result.unwrap_or_else(|e| e.raise())
}

fn check_age(interval: Option<pgrx::datum::Interval>) -> Result<pgrx::datum::Interval, SyncError> {
    let interval = interval.ok_or(SyncError::NullArgument("older_than"))?;
    let zero = pgrx::datum::Interval::new(0, 0, 0).expect("the zero interval");
    if interval < zero {
        return Err(SyncError::OutOfRange { name: "older_than", range: "a positive interval" });
    }
    Ok(interval)
}

/// Run a purge statement (`$1` the age, then `extra`) and answer how many rows it removed.
fn purge(older_than: Option<pgrx::datum::Interval>, statement: &str, extra: Option<pg_sys::Oid>) -> i64 {
    let result = (|| {
        let interval = check_age(older_than)?;
        Ok(Spi::connect_mut(|client| {
            let mut args = vec![interval.into()];
            args.extend(extra.map(Into::into));
            client
                .update(statement, None, &args)
                .expect("inventory_sync: purging failed")
                .first()
                .get_one::<i64>()
                .ok()
                .flatten()
                .unwrap_or(0)
        }))
    })();
    result.unwrap_or_else(|e: SyncError| e.raise())
}

/// Remove tombstones older than `older_than` (by the server time of the delete), from the
/// default table and the tracked tables. A device whose last pull is older than the purge must
/// pull again from the beginning: its cursor is then refused. Answers how many were removed.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_tombstones(older_than: Option<pgrx::datum::Interval>) -> i64 {
    engine::check_writable(c"purge_tombstones()");
    purge(older_than, &sql::purge_tombstones(), Some(default_table_oid()))
}

/// Forget mutation ids applied more than `older_than` ago: a retry after that is applied again.
/// Answers how many were forgotten.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_mutations(older_than: Option<pgrx::datum::Interval>) -> i64 {
    engine::check_writable(c"purge_mutations()");
    purge(older_than, sql::PURGE_MUTATIONS, None)
}

/// Set how a field merges: `lww` (row-level last-write-wins, the default), `field_lww` (each
/// field its own clock), `delta` (numbers: apply the difference from the `base` the device sent)
/// or `server_wins` (once set, kept). For the default table (`inventory_sync.inventory`) a field
/// is a key of `data`; for a tracked table, a column. Only the table's owner may.
#[pg_extern(volatile, parallel_unsafe)]
fn set_policy(tbl: Option<RegClass>, field: Option<String>, policy: Option<String>) {
    engine::check_writable(c"set_policy()");
    let result = (|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        let field = field.ok_or(SyncError::NullArgument("field"))?;
        let policy = policy.ok_or(SyncError::NullArgument("policy"))?;
        let policy = crate::merge::Policy::parse(&policy).ok_or(SyncError::UnknownPolicy(policy))?;
        Spi::connect_mut(|client| catalog::set_policy(client, tbl.0, &field, policy))
    })();
    result.unwrap_or_else(|e| e.raise())
}
