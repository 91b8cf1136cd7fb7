//! The one conflict engine. The default table and every tracked table go through `decide`: the
//! argument checks, the clock-skew guard, the atomic upsert and, when it declines, the journaled
//! conflict. Tables differ only in the SQL of their statements (see `sql`).

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;

use crate::error::SyncError;
use crate::types::Jsonb;
use crate::rules::{self, Skew};
use crate::settings;
use crate::sql;
use crate::storage::Kept;

const JSONB: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::JSONBOID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TIMESTAMPTZOID);
const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
const INTEGER: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);
const FLOAT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::FLOAT8OID);

/// A value bound as a statement parameter: a datum of type `oid`, or NULL.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub datum: Option<pg_sys::Datum>,
    pub oid: pg_sys::Oid,
}

impl Param {
    pub fn bind(&self) -> DatumWithOid<'static> {
        match self.datum {
            // SAFETY: the datum was produced for type `oid` and lives for the current call.
            Some(d) => unsafe { DatumWithOid::new(d, self.oid) },
            None => DatumWithOid::null_oid(self.oid),
        }
    }
}

/// What the conflict and rejection paths need of a table: its name for the journal and the two
/// statements, built by `sql::conflict` and `sql::reject` for its key and row shape.
pub struct Table {
    pub name: String,
    conflict: Kept,
    reject: Kept,
}

impl Table {
    /// `name` quoted and schema-qualified; `key` the quoted key column of type `key_type`;
    /// `server_row` the SQL expression for the row as a client stores it.
    pub fn new(name: String, key: &str, key_type: pg_sys::Oid, server_row: &str) -> Self {
        let common = vec![PgOid::from_untagged(key_type), JSONB, TIMESTAMPTZ, TEXT];
        let mut reject_types = common.clone();
        reject_types.extend([INTEGER, FLOAT8]);
        Table {
            conflict: Kept::new(sql::conflict(&name, key, server_row), common),
            reject: Kept::new(sql::reject(&name, key, server_row), reject_types),
            name,
        }
    }
}

/// One client write, checked.
pub struct Write {
    pub key: Param,
    pub payload: Jsonb,
    pub client_ts: TimestampWithTimeZone,
}

/// The checks every write gets: payload and client_ts present, client_ts finite, payload an
/// object.
pub fn check_write(
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Result<(Jsonb, TimestampWithTimeZone), SyncError> {
    let payload = payload.ok_or(SyncError::NullArgument("payload"))?;
    let client_ts = client_ts.ok_or(SyncError::NullArgument("client_ts"))?;
    if client_ts.is_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "infinity" });
    }
    if client_ts.is_neg_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "-infinity" });
    }
    rules::check_payload_kind(&payload.kind())?;
    Ok((payload, client_ts))
}

/// Decide one checked write: rejected (clock skew), applied (by `upsert`, which answers None when
/// the stored row is newer and leaves it locked), or a journaled conflict. Everything runs in the
/// caller's transaction.
pub fn decide(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write,
    upsert: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<Jsonb, SyncError> {
    let max_skew = settings::MAX_CLOCK_SKEW.get();
    // SAFETY: plain read of the current transaction's start time, i.e. now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let common = || {
        [
            write.key.bind(),
            write.payload.into(),
            write.client_ts.into(),
            table.name.as_str().into(),
        ]
    };
    match rules::check_clock_skew(write.client_ts.into_inner(), now, max_skew) {
        Skew::Reject { ahead_by_micros } => {
            let ahead = ahead_by_micros as f64 / rules::MICROS_PER_SECOND as f64;
            let [a, b, c, d] = common();
            Ok(table
                .reject
                .run(client, &[a, b, c, d, max_skew.into(), ahead.into()])
                .expect("inventory_sync: the rejection statement answered no row"))
        }
        Skew::Accept => match upsert(client)? {
            Some(applied) => Ok(applied),
            None => Ok(table
                .conflict
                .run(client, &common())
                .expect("inventory_sync: the conflict statement answered no row")),
        },
    }
}
