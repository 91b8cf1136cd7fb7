//! `sync_push`: a device's whole upload in one call, one outcome per change, in order.
//!
//! Changes run in subtransactions (as a PL/pgSQL EXCEPTION block does), 64 at a time, and one by
//! one when a group holds an invalid change, so an invalid change rolls back only itself and
//! becomes an `error` outcome while the others proceed. With
//! `atomic`, there are no subtransactions: the first invalid change fails the whole call, and
//! the error names the change.
//!
//! Changes are applied in the order of their rows (table, then key), not in the order given:
//! every batch then takes its row locks in the same order, so two devices pushing overlapping
//! batches at the same time do not deadlock (as long as they spell table names and keys the
//! same way). Changes to the same row keep their order (the sort
//! is stable), and the outcomes come back in the order given.
//!
//! Memory stays bounded for any batch size: changes are read one at a time from the jsonb array
//! (never parsed as a whole), and everything a change allocates lives in a memory context reset
//! after it. What grows is only the outcomes' JSON text.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::pg::jsonb::{answers_in, Jsonb};
use crate::pg::memory::Scratch;
use crate::pg::subxact::{catching, in_subtransaction, Failure};
use crate::pg::values::{regclass_in, timestamptz_in};
use crate::write::{self, Named, Op};
use inventory_sync_core::{SqlState, SyncError};

/// Changes tried together in one subtransaction (see `push`).
const CHUNK: usize = 64;

const KEYS: [&str; 8] = ["op", "table", "id", "payload", "client_ts", "client_id", "mutation_id", "base"];

/// One change of a batch, read from its JSON object.
struct Change {
    op: Op,
    table: Option<String>,
    id: Value,
    payload: Option<Jsonb>,
    base: Option<Jsonb>,
    client_ts: String,
    client_id: Option<String>,
    mutation_id: Option<String>,
}

fn bad(why: impl Into<String>) -> SyncError {
    SyncError::BadChange(why.into())
}

/// A change's key, as a JSON value: the small ones (op, id, table, client_ts, client ids) are read;
/// payload and base are taken from the jsonb itself, never parsed here.
type Entries = std::collections::BTreeMap<String, Box<RawValue>>;

fn small(obj: &Entries, key: &str) -> Result<Value, SyncError> {
    match obj.get(key) {
        None => Ok(Value::Null),
        Some(raw) => {
            serde_json::from_str(raw.get()).map_err(|_| bad(format!("change key \"{key}\" is nested too deeply")))
        }
    }
}

fn optional_string(obj: &Entries, key: &str) -> Result<Option<String>, SyncError> {
    match small(obj, key)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(bad(format!("change key \"{key}\" must be a string"))),
    }
}

/// Whether a key is present and not null, and whether it holds an object, without parsing it.
fn presence(obj: &Entries, key: &str) -> (bool, bool) {
    match obj.get(key).map(|raw| raw.get().trim_start()) {
        None => (false, false),
        Some(text) if text.starts_with("null") => (false, false),
        Some(text) => (true, text.starts_with('{')),
    }
}

/// Read a change: its shape only; values are checked by the write itself.
fn parse(item: Jsonb) -> Result<Change, SyncError> {
    let Some(obj) = item.entries() else {
        return Err(bad("change must be a JSON object"));
    };
    if let Some(unknown) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(bad(format!("unknown key \"{unknown}\" in change")));
    }
    let op = match small(&obj, "op")? {
        Value::Null => Op::Upsert,
        Value::String(s) if s == "upsert" => Op::Upsert,
        Value::String(s) if s == "delete" => Op::Delete,
        _ => return Err(bad("change key \"op\" must be \"upsert\" or \"delete\"")),
    };
    let id = match small(&obj, "id")? {
        Value::Null => return Err(bad("change has no \"id\"")),
        id @ (Value::Number(_) | Value::String(_)) => id,
        _ => return Err(bad("change key \"id\" must be a number or a string")),
    };
    let client_ts = optional_string(&obj, "client_ts")?.ok_or_else(|| bad("change has no \"client_ts\""))?;
    let payload = match (op, presence(&obj, "payload").0) {
        (Op::Upsert, false) => return Err(bad("an upsert change needs a \"payload\"")),
        (Op::Upsert, true) => item.field("payload"),
        (Op::Delete, false) => None,
        (Op::Delete, true) => return Err(bad("a delete change takes no \"payload\"")),
    };
    let base = match (op, presence(&obj, "base")) {
        (_, (false, _)) => None,
        (Op::Upsert, (true, true)) => item.field("base"),
        (Op::Upsert, (true, false)) => return Err(bad("change key \"base\" must be a JSON object")),
        (Op::Delete, _) => return Err(bad("a delete change takes no \"base\"")),
    };
    Ok(Change {
        op,
        table: optional_string(&obj, "table")?,
        id,
        payload,
        base,
        client_ts,
        client_id: optional_string(&obj, "client_id")?,
        mutation_id: optional_string(&obj, "mutation_id")?,
    })
}

/// Apply one change through the write path the single calls use.
fn apply(change: Change) -> Result<Jsonb, SyncError> {
    let cstr = |s: &str| std::ffi::CString::new(s).map_err(|_| bad("change text contains a NUL character"));
    let client_ts = timestamptz_in(&cstr(&change.client_ts)?);
    let (client_id, mutation_id) = (change.client_id, change.mutation_id);
    let named = match change.table {
        None => {
            let id = match &change.id {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| bad(format!("id {} is not a bigint, as the default table's ids are", change.id)))?;
            Named::Default(id)
        }
        Some(table) => {
            let relid = regclass_in(&cstr(&table)?).ok_or(SyncError::NullArgument("tbl"))?;
            let id = match &change.id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Named::table(relid, id)?
        }
    };
    match change.op {
        Op::Upsert => write::upsert(named, change.payload, client_ts, client_id, mutation_id, change.base),
        Op::Delete => write::delete(named, client_ts, client_id, mutation_id),
    }
}

/// An error as an outcome: `{"status": "error", "id", "sqlstate", "message"}`.
fn error_outcome(id: &Value, sqlstate: SqlState, message: &str) -> String {
    serde_json::json!({
        "status": "error",
        "id": id,
        "sqlstate": sqlstate.text(),
        "message": message,
    })
    .to_string()
}

/// A change's own error (see `SqlState::belongs_to_change`) comes back, to become its outcome;
/// any other aborts the whole call, as it would a PL/pgSQL exception block that does not name it.
fn own_errors<R>(result: Result<R, Failure>) -> Result<R, (SqlState, String)> {
    result.map_err(|f| if f.sqlstate.belongs_to_change() { (f.sqlstate, f.message) } else { f.raise_again() })
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum RowKey {
    Int(i64),
    Text(String),
}

fn row_order(item: Jsonb) -> (Option<String>, RowKey) {
    let text = |key: &str| item.field(key).and_then(|f| f.scalar_text());
    let id = match text("id") {
        Some(t) => t.parse::<i64>().map(RowKey::Int).unwrap_or(RowKey::Text(t)),
        None => RowKey::Text(String::new()),
    };
    (text("table"), id)
}

/// The batch: a JSON array of outcomes, one per change, in order.
pub fn push(changes: Option<Jsonb>, atomic: bool) -> Result<Jsonb, SyncError> {
    let changes = changes.ok_or(SyncError::NullArgument("changes"))?;
    let kind = changes.kind();
    if kind != "array" {
        return Err(SyncError::NotAnArray { got: kind });
    }
    let count = changes.array_length();
    let mut per_change = Scratch::new("inventory_sync push change");

    // First pass: where each change's row sorts (a few bytes per change).
    let mut order: Vec<(Option<String>, RowKey, usize)> = Vec::with_capacity(count);
    for index in 0..count {
        let (tbl, key) = per_change.run(|| row_order(changes.array_element(index)));
        order.push((tbl, key, index));
        per_change.reset();
    }
    order.sort(); // by row, then by position: changes to one row keep their order

    let mut outcomes: Vec<String> = vec![String::new(); count];
    let order: Vec<usize> = order.into_iter().map(|(_, _, index)| index).collect();
    for chunk in order.chunks(CHUNK) {
        // Optimistically, a chunk of changes in one subtransaction: most batches have no
        // invalid change, and a subtransaction per change costs about as much as the change.
        // If any change of the chunk fails, the chunk is rolled back and redone one change per
        // subtransaction, so the other changes' outcomes are exactly what they would have been.
        if !atomic && chunk.len() > 1 {
            // The outcomes are copied out (as text) before the context is reset.
            let attempt = per_change.run(|| {
                answers_in(|| {
                    own_errors(in_subtransaction(|| {
                        chunk
                            .iter()
                            .map(|&index| parse(changes.array_element(index)).and_then(apply).map(|a| a.to_text()))
                            .collect::<Result<Vec<String>, SyncError>>()
                    }))
                })
            });
            per_change.reset();
            if let Ok(texts) = attempt {
                for (&index, text) in chunk.iter().zip(texts) {
                    outcomes[index] = text;
                }
                continue;
            }
        }
        for &index in chunk {
            let outcome = per_change.run(|| {
                answers_in(|| {
                    let item = changes.array_element(index);
                    if atomic {
                        return catching(|| parse(item).and_then(apply))
                            .map(|a| a.to_text())
                            .map_err(|f| SyncError::InChange { index, sqlstate: f.sqlstate, message: f.message });
                    }
                    // The id, for an error outcome: as sent, when the change has one.
                    let id =
                        item.field("id").and_then(|f| serde_json::from_str(&f.to_text()).ok()).unwrap_or(Value::Null);
                    Ok(match own_errors(in_subtransaction(|| parse(item).and_then(apply))) {
                        Ok(answer) => answer.to_text(),
                        Err((code, message)) => error_outcome(&id, code, &message),
                    })
                })
            })?;
            outcomes[index] = outcome;
            // Nothing allocated in the context outlives this change: the outcome was copied out.
            per_change.reset();
        }
    }
    let mut out = String::with_capacity(2 + outcomes.iter().map(|o| o.len() + 1).sum::<usize>());
    out.push('[');
    for (i, outcome) in outcomes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(outcome);
    }
    out.push(']');
    drop(outcomes);
    Ok(Jsonb::from_text(&out))
}
