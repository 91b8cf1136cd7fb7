//! The SQL-facing functions. Each is a thin wrapper: argument checks by the pure rules, the
//! statements in `storage`, errors raised with their SQLSTATE.
//!
//! The functions run with the caller's rights (SECURITY INVOKER): table grants apply.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use crate::error::SyncError;
use crate::jsonb::{classify_id_key, Jsonb};
use crate::rules::{self, Skew};
use crate::{settings, storage};

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
    upsert(id, payload, client_ts).unwrap_or_else(|e| e.raise())
}

fn upsert(
    id: Option<i64>,
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
) -> Result<Jsonb, SyncError> {
    let id = id.ok_or(SyncError::NullArgument("id"))?;
    let payload = payload.ok_or(SyncError::NullArgument("payload"))?;
    let client_ts = client_ts.ok_or(SyncError::NullArgument("client_ts"))?;
    if client_ts.is_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "infinity" });
    }
    if client_ts.is_neg_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "-infinity" });
    }
    rules::check_payload_kind(&payload.kind())?;
    let (kind, text) = payload.id_key();
    rules::check_id_key(id, classify_id_key(kind.as_deref(), text.as_deref()))?;

    let max_skew = settings::MAX_CLOCK_SKEW.get();
    // SAFETY: plain read of the current transaction's start time, i.e. now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let skew = rules::check_clock_skew(client_ts.into_inner(), now, max_skew);

    Ok(Spi::connect_mut(|client| match skew {
        Skew::Reject { ahead_by_micros } => storage::journal_rejection(
            client,
            id,
            payload,
            client_ts,
            max_skew,
            ahead_by_micros as f64 / rules::MICROS_PER_SECOND as f64,
        ),
        Skew::Accept => storage::upsert(client, id, payload, client_ts)
            .unwrap_or_else(|| storage::journal_conflict(client, id, payload, client_ts)),
    }))
}
