//! The one merging loop, for writes that touch a field with a merge policy (see
//! `inventory_sync_core::merge`): lock and read the stored row, merge field by field, write the
//! result, and answer `applied`, `merged` or `conflict`, journaling what lost. The table supplies
//! the reading and the writing (`Statements`).

use pgrx::datum::TimestampWithTimeZone;
use pgrx::spi::SpiClient;
use serde_json::{Map, Value};

use super::decide::journal;
use super::{Statements, Write};
use crate::catalog::{Policies, Table};
use crate::pg::jsonb::Jsonb;
use inventory_sync_core::merge;
use inventory_sync_core::rules::MAX_ROUNDS;
use inventory_sync_core::SyncError;

/// A JSON object's fields.
pub type Fields = Map<String, Value>;

/// Merge `write` (its `fields`, and for delta fields the `base` it started from) into the row of
/// `statements`' table under `policies`.
pub fn merge_write(
    client: &mut SpiClient<'_>,
    statements: &dyn Statements,
    write: &Write<'_>,
    fields: &Fields,
    base: Option<&Fields>,
    policies: &Policies,
) -> Result<Jsonb, SyncError> {
    let table = statements.table();
    statements.lock_row(client, write);
    let mut unseen = 0;
    for _ in 0..MAX_ROUNDS {
        let stored = statements.read_for_merge(client, write, fields)?;
        let incoming = merge::Incoming { clock: clock_of(write), payload: fields, base };
        let m = merge::merge(stored.as_ref(), &incoming, |f| policies.get(f).copied().unwrap_or(merge::Policy::Lww))
            .map_err(|merge::MergeError::NotANumber { field }| SyncError::DeltaNotANumber { field })?;
        if m.status == merge::Status::Conflict {
            return Ok(finish(client, table, write, fields, &m, None));
        }
        let row_existed = stored.as_ref().is_some_and(|s| !s.deleted);
        match statements.write_merged(client, write, &m, stored.as_ref())? {
            Some(written) => return Ok(finish(client, table, write, fields, &m, Some(written))),
            None => {
                // The write met a row the read did not see: one inserted since (the next round
                // sees it), or one row-level security hides from the caller (every round misses
                // it): then a conflict whose server_data the caller may not see. A write with a
                // base_version expected the row it read (locked, or none): a row inserted since
                // is not at that base.
                unseen += usize::from(!row_existed);
                if unseen == 2 || write.expected.is_some() {
                    return Ok(finish(client, table, write, fields, &m, None));
                }
            }
        }
    }
    Err(SyncError::Unsettled { table: table.name.clone(), rounds: MAX_ROUNDS })
}

/// A stored timestamp as a clock's microseconds (NULL: older than everything).
pub fn clock_micros(ts: Option<TimestampWithTimeZone>) -> i64 {
    ts.map_or(i64::MIN, |t| t.into_inner())
}

/// The timestamp of a clock, for binding.
pub fn timestamp(micros: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(micros).expect("a merged clock is a valid timestamp")
}

/// The write's clock for the merge rules.
pub fn clock_of(write: &Write<'_>) -> merge::Clock {
    merge::Clock { ts: write.client_ts.into_inner(), by: write.client_id.clone() }
}

/// Finish a merging write: journal what lost and answer. `written` is the write statement's
/// `applied` answer (None for a conflict, where nothing was written).
fn finish(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write<'_>,
    fields: &serde_json::Map<String, serde_json::Value>,
    m: &merge::Merge,
    written: Option<Jsonb>,
) -> Jsonb {
    use serde_json::value::{to_raw_value, RawValue};
    use serde_json::Value;
    // Answers are put together from their parts' JSON text, never parsed whole: `server_data` is
    // the stored row, which may nest deeper than a JSON parser in Rust reads.
    fn raw(v: &impl serde::Serialize) -> Box<RawValue> {
        to_raw_value(v).expect("an answer part serializes")
    }
    let mut answer = match (m.status, written) {
        (merge::Status::Conflict, _) | (_, None) => journal(client, table, write, write.payload).entries(),
        (merge::Status::Applied, Some(w)) => w.entries(),
        (merge::Status::Merged, Some(w)) => {
            let lost: serde_json::Map<String, Value> =
                m.lost.iter().filter_map(|k| fields.get(k).map(|v| (k.clone(), v.clone()))).collect();
            let journaled = journal(client, table, write, Jsonb::from_object(&lost));
            let mut answer = w.entries().expect("an answer is an object");
            answer.insert("status".into(), raw(&"merged"));
            answer.insert("applied".into(), raw(&m.applied));
            answer.insert("lost".into(), raw(&m.lost));
            let server_data = journaled.entries().and_then(|mut j| j.remove("server_data"));
            answer.insert("server_data".into(), server_data.unwrap_or_else(|| raw(&Value::Null)));
            Some(answer)
        }
    }
    .expect("an answer is an object");
    if !m.without_base.is_empty() {
        answer.insert("delta_without_base".into(), raw(&m.without_base));
    }
    Jsonb::from_serialize(&answer)
}
