//! The SQL-facing functions: thin wrappers that check arguments, hand the write to the engine
//! and raise errors with their SQLSTATE. They run with the caller's rights (SECURITY INVOKER):
//! table grants and row-level security apply.

use std::cell::OnceCell;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::{self, PgOid};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog;
use crate::convert;
use crate::engine::{self, Param, Table, Write};
use crate::error::SyncError;
use crate::rules;
use crate::sql;
use crate::storage::Kept;
use crate::types::{classify_id_key, Jsonb, Name, RegClass};

thread_local! {
    /// The default table's statements, built on first use in this backend.
    static DEFAULT: OnceCell<(Table, Kept)> = const { OnceCell::new() };
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
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Jsonb {
    upsert_default(id, payload, client_ts).unwrap_or_else(|e| e.raise())
}

fn upsert_default(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Result<Jsonb, SyncError> {
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    let (payload, client_ts) = engine::check_write(payload, client_ts)?;
    let (kind, text) = payload.id_key();
    rules::check_id_key(id, classify_id_key(kind.as_deref(), text.as_deref()))?;
    let write = Write {
        key: Param { datum: Some(pg_sys::Datum::from(id)), oid: pg_sys::INT8OID },
        payload,
        client_ts,
    };
    Spi::connect_mut(|client| {
        DEFAULT.with(|default| {
            let (table, upsert) = default.get_or_init(|| {
                let table = Table::new(
                    sql::DEFAULT_TABLE.to_string(),
                    "id",
                    pg_sys::INT8OID,
                    sql::DEFAULT_SERVER_ROW,
                );
                let types = [pg_sys::INT8OID, pg_sys::JSONBOID, pg_sys::TIMESTAMPTZOID];
                let upsert = Kept::new(sql::default_upsert(), types.map(PgOid::from_untagged).to_vec());
                (table, upsert)
            });
            let args = [id.into(), payload.into(), client_ts.into()];
            engine::decide(client, table, &write, |client| Ok(upsert.run(client, &args)))
        })
    })
}

/// Write one row of a tracked table with last-write-wins, atomically: `sync_upsert` for the
/// application's own tables. `id` is the primary key as text; `payload` keys are column names,
/// their values converted to the column types. Answers as `sync_upsert` does, with `server_data`
/// the row as JSON.
#[pg_extern(volatile, parallel_unsafe)]
fn sync_upsert_in(
    tbl: Option<RegClass>,
    id: Option<&str>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Jsonb {
    upsert_tracked(tbl, id, payload, client_ts).unwrap_or_else(|e| e.raise())
}

fn upsert_tracked(
    tbl: Option<RegClass>,
    id: Option<&str>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Result<Jsonb, SyncError> {
    let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    let (payload, client_ts) = engine::check_write(payload, client_ts)?;
    Spi::connect_mut(|client| write_tracked(client, tbl, id, payload, client_ts))
}

fn write_tracked(
    client: &mut SpiClient<'_>,
    tbl: RegClass,
    id: &str,
    payload: Jsonb,
    client_ts: TimestampWithTimeZone,
) -> Result<Jsonb, SyncError> {
    let tracked = catalog::get(client, tbl.0)?;
    let table = &tracked.table.name;
    let key_col = &tracked.columns[tracked.key];
    let key = convert::to_datum(Some(id), key_col.typid, key_col.typmod, &key_col.name, table)?;

    let serde_json::Value::Object(fields) = payload.to_value() else {
        unreachable!("check_write accepted a payload that is not an object")
    };
    let mut values: Vec<(usize, Param)> = Vec::with_capacity(fields.len());
    for (name, value) in &fields {
        let Some(pos) = tracked.column(name) else {
            return Err(SyncError::UnknownKey { key: name.clone(), table: table.clone() });
        };
        let col = &tracked.columns[pos];
        let text = convert::input_text(value, col.shape);
        if pos == tracked.key {
            // The key may repeat the id argument (clients send whole records), never differ.
            let same = match (&text, key) {
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
                    key: value.to_string(),
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
    let positions: Vec<usize> = values.iter().map(|(pos, _)| *pos).collect();

    let write = Write { key: Param { datum: key, oid: key_col.typid }, payload, client_ts };
    let mut args = Vec::with_capacity(values.len() + 2);
    args.push(write.key.bind());
    args.push(client_ts.into());
    args.extend(values.iter().map(|(_, p)| p.bind()));
    engine::decide(client, &tracked.table, &write, |client| tracked.write(client, &positions, &args))
}

/// Put an existing table under sync. It needs a single-column primary key (bigint, integer, uuid
/// or text) and a `timestamptz` column holding each row's write timestamp (`ts_column`, default
/// `updated_at`). Only the table's owner may track it. Tracking again changes the column.
#[pg_extern(volatile, parallel_unsafe)]
fn track(tbl: Option<RegClass>, ts_column: default!(Option<Name>, "'updated_at'")) {
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
    let result = (|| {
        let tbl = tbl.ok_or(SyncError::NullArgument("tbl"))?;
        Spi::connect_mut(|client| catalog::untrack(client, tbl.0))
    })();
    result.unwrap_or_else(|e| e.raise())
}
