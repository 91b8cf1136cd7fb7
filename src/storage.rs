//! The SQL the extension runs, planned once per backend and kept (`SPI_keepplan`), as PL/pgSQL
//! does for its statements: re-planning on every call would roughly halve the throughput of a
//! call that is otherwise one index probe and one row write.
//!
//! Every statement is safe against a hostile `search_path`: tables, functions, operators and types
//! are all schema-qualified (`OPERATOR(pg_catalog.=)`), so an object a user creates in `public`
//! can never be picked up in their place.
//!
//! Every statement is prepared with `prepare_mut`, even the reads: SPI then takes a fresh snapshot
//! for each statement at READ COMMITTED, which is what lets the conflict path see the row version
//! that beat us.

use std::cell::OnceCell;
use std::thread::LocalKey;

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{OwnedPreparedStatement, SpiClient};

use crate::jsonb::Jsonb;

type Plan = LocalKey<OnceCell<OwnedPreparedStatement>>;

const BIGINT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT8OID);
const JSONB: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::JSONBOID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TIMESTAMPTZOID);
const INTEGER: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);
const FLOAT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::FLOAT8OID);

/// The check and the write in one statement. `ON CONFLICT DO UPDATE` locks the existing row and
/// evaluates the `WHERE` against its latest committed version (waiting for a concurrent writer
/// to finish first), so no interleaving lets an older `client_ts` overwrite a newer one. When the
/// `WHERE` fails, nothing is returned and the row stays locked until the transaction ends.
/// `xmax = 0` tells a fresh insert from an update: an updated row version carries our lock.
const UPSERT_SQL: &str = "
INSERT INTO inventory_sync.inventory AS stored (id, data, updated_at)
VALUES ($1, $2 OPERATOR(pg_catalog.-) '{id,updated_at}'::pg_catalog.text[], $3)
ON CONFLICT (id) DO UPDATE
   SET data = stored.data OPERATOR(pg_catalog.||) excluded.data,
       updated_at = excluded.updated_at
 WHERE stored.updated_at OPERATOR(pg_catalog.<=) excluded.updated_at
RETURNING pg_catalog.jsonb_build_object(
    'status', 'applied', 'id', stored.id, 'updated_at', stored.updated_at,
    'created', stored.xmax OPERATOR(pg_catalog.=) 0)";

/// The row as a client stores it: the fields of `data` plus `id` and `updated_at`.
macro_rules! server_row_cte {
    () => {
        "WITH server AS (
    SELECT s.data OPERATOR(pg_catalog.||)
           pg_catalog.jsonb_build_object('id', s.id, 'updated_at', s.updated_at) AS data
      FROM inventory_sync.inventory s
     WHERE s.id OPERATOR(pg_catalog.=) $1
)"
    };
}

/// The losing write goes to the journal and the answer carries the row that won. Runs right after
/// UPSERT_SQL declined to write, while we hold that row's lock, in a fresh snapshot: the row it
/// reads is the one the decision was made against.
const CONFLICT_SQL: &str = concat!(
    server_row_cte!(),
    ", journal AS (
    INSERT INTO inventory_sync.conflicts (id, table_name, reason, client_payload, client_ts, server_data)
    SELECT $1, 'inventory_sync.inventory', 'stale', $2, $3, server.data FROM server
)
SELECT pg_catalog.jsonb_build_object('status', 'conflict', 'id', $1, 'server_data', server.data)
  FROM server"
);

/// A write from a clock running ahead: journaled (with the current row, if any), not applied.
const REJECT_SQL: &str = concat!(
    server_row_cte!(),
    ", journal AS (
    INSERT INTO inventory_sync.conflicts (id, table_name, reason, client_payload, client_ts, server_data)
    VALUES ($1, 'inventory_sync.inventory', 'clock_skew', $2, $3, (SELECT server.data FROM server))
)
SELECT pg_catalog.jsonb_build_object(
    'status', 'rejected', 'id', $1, 'reason', 'clock_skew',
    'client_ts', $3, 'server_time', pg_catalog.now(),
    'ahead_by_seconds', $5, 'max_clock_skew_seconds', $4,
    'message', 'client_ts is ahead of the server clock by more than inventory_sync.max_clock_skew; '
               'correct the device clock and send the change again')"
);

thread_local! {
    static UPSERT: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
    static CONFLICT: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
    static REJECT: OnceCell<OwnedPreparedStatement> = const { OnceCell::new() };
}

/// Run a kept statement, preparing it on first use in this backend, and return its one jsonb
/// column of its first row (None when it returned no row).
fn run(
    client: &mut SpiClient<'_>,
    plan: &'static Plan,
    sql: &str,
    types: &[PgOid],
    args: &[DatumWithOid<'_>],
) -> Option<Jsonb> {
    plan.with(|cell| {
        let stmt = match cell.get() {
            Some(stmt) => stmt,
            None => {
                let prepared = client
                    .prepare_mut(sql, types)
                    .expect("inventory_sync: preparing a built-in statement failed")
                    .keep();
                cell.get_or_init(|| prepared)
            }
        };
        let table = client
            .update(stmt, None, args)
            .expect("inventory_sync: executing a built-in statement failed");
        if table.is_empty() {
            None
        } else {
            table.first().get_one::<Jsonb>().expect("inventory_sync: answer column is not jsonb")
        }
    })
}

/// Insert or apply the write if it is not older than the stored row; `None` means the stored row
/// is newer and nothing was written.
pub fn upsert(
    client: &mut SpiClient<'_>,
    id: i64,
    payload: Jsonb,
    client_ts: TimestampWithTimeZone,
) -> Option<Jsonb> {
    run(
        client,
        &UPSERT,
        UPSERT_SQL,
        &[BIGINT, JSONB, TIMESTAMPTZ],
        &[id.into(), payload.into(), client_ts.into()],
    )
}

/// Journal a write that lost to a newer row and answer with that row.
pub fn journal_conflict(
    client: &mut SpiClient<'_>,
    id: i64,
    payload: Jsonb,
    client_ts: TimestampWithTimeZone,
) -> Jsonb {
    run(
        client,
        &CONFLICT,
        CONFLICT_SQL,
        &[BIGINT, JSONB, TIMESTAMPTZ],
        &[id.into(), payload.into(), client_ts.into()],
    )
    .expect("inventory_sync: the row that won the conflict is gone while locked")
}

/// Journal a write rejected by the clock-skew guard and answer why.
pub fn journal_rejection(
    client: &mut SpiClient<'_>,
    id: i64,
    payload: Jsonb,
    client_ts: TimestampWithTimeZone,
    max_skew_seconds: i32,
    ahead_by_seconds: f64,
) -> Jsonb {
    run(
        client,
        &REJECT,
        REJECT_SQL,
        &[BIGINT, JSONB, TIMESTAMPTZ, INTEGER, FLOAT8],
        &[
            id.into(),
            payload.into(),
            client_ts.into(),
            max_skew_seconds.into(),
            ahead_by_seconds.into(),
        ],
    )
    .expect("inventory_sync: the rejection statement returned no row")
}
