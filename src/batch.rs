//! `sync_push`: a device's whole upload in one call, one outcome per change, in order.
//!
//! Changes run in subtransactions (as a PL/pgSQL EXCEPTION block does), 64 at a time, and one by
//! one when a group holds an invalid change, so an invalid change rolls back only itself and
//! becomes an `error` outcome while the others proceed; a change a tracked table's rules refuse
//! becomes a `rejected` outcome, caught in that one-by-one pass (`write::batched`). With
//! `atomic`, there are no subtransactions: the first invalid or refused change fails the whole
//! call, and the error names the change.
//!
//! Changes are applied in the order of their rows (table, then key), not in the order given:
//! every batch then takes its row locks in the same order, so two devices pushing overlapping
//! batches at the same time do not deadlock (as long as they spell table names and keys the
//! same way). Changes to the same row keep their order (the sort
//! is stable), and the outcomes come back in the order given.
//!
//! Memory stays bounded for any batch size: changes are read one at a time from the jsonb array
//! (never parsed as a whole), and everything a change allocates lives in a memory context reset
//! after it. What grows is only the outcomes' JSON text. `sync_push_json` takes the batch as
//! JSON text and answers JSON text: PostgreSQL then never builds the whole batch or the whole
//! answer as jsonb (which takes many times the text's size), and each change is read as jsonb
//! only while it runs.

use std::cell::Cell;

use serde_json::Value;

use crate::catalog::cluster;
use crate::pg::jsonb::{answers_in, Jsonb};
use crate::pg::memory::Scratch;
use crate::pg::subxact::{catching, in_subtransaction, Failure};
use crate::pg::values::{regclass_in, timestamptz_in};
use crate::write::{self, Named, Op, Sent};
use inventory_sync_core::change::Change;
use inventory_sync_core::{SqlState, SyncError};

/// A batch's changes: a jsonb array (`sync_push`), or JSON text and where its elements lie
/// (`sync_push_json`).
pub enum Batch<'a> {
    Jsonb(Jsonb),
    Text(&'a str, Vec<std::ops::Range<usize>>),
}

impl<'a> Batch<'a> {
    /// The batch `sync_push` got: a jsonb array.
    pub fn of_jsonb(changes: Option<Jsonb>) -> Result<Batch<'a>, SyncError> {
        let changes = changes.ok_or(SyncError::NullArgument("changes"))?;
        let kind = changes.kind();
        if kind != "array" {
            return Err(SyncError::NotAnArray { got: kind });
        }
        Ok(Batch::Jsonb(changes))
    }

    /// The batch `sync_push_json` got: JSON text (valid: PostgreSQL's json input checked it).
    pub fn of_text(changes: Option<&'a str>) -> Result<Batch<'a>, SyncError> {
        let text = changes.ok_or(SyncError::NullArgument("changes"))?;
        Ok(Batch::Text(text, inventory_sync_core::batch_text::array_elements(text)?))
    }

    fn len(&self) -> usize {
        match self {
            Batch::Jsonb(array) => array.array_length(),
            Batch::Text(_, elements) => elements.len(),
        }
    }

    /// Change `index`, as jsonb in the current memory context (a change's own, reset after it).
    fn element(&self, index: usize) -> Jsonb {
        match self {
            Batch::Jsonb(array) => array.array_element(index),
            Batch::Text(text, elements) => answers_in(|| Jsonb::from_text(&text[elements[index].clone()])),
        }
    }
}

/// Changes tried together in one subtransaction (see `push`).
const CHUNK: usize = 64;

fn bad(why: impl Into<String>) -> SyncError {
    SyncError::BadChange(why.into())
}

/// One change of a batch: its shape (`Change`), and its payload and base as jsonb.
struct Parsed {
    change: Change,
    payload: Option<Jsonb>,
    base: Option<Jsonb>,
}

/// Read a change: its shape only; values are checked by the write itself.
fn parse(item: Jsonb) -> Result<Parsed, SyncError> {
    let change = Change::read(item.entries().as_ref())?;
    let payload = if change.payload { item.field("payload") } else { None };
    let base = if change.base { item.field("base") } else { None };
    Ok(Parsed { change, payload, base })
}

fn cstr(s: &str) -> Result<std::ffi::CString, SyncError> {
    std::ffi::CString::new(s).map_err(|_| bad("change text contains a NUL character"))
}

/// Apply one change through the write path the single calls use.
fn apply(parsed: Parsed) -> Result<Jsonb, SyncError> {
    let Parsed { change, payload, base } = parsed;
    let client_ts = match &change.client_ts {
        Some(text) => timestamptz_in(&cstr(text)?),
        None => None,
    };
    let without_ts = change.client_ts.is_none();
    let named = named(&change)?;
    let sent = Sent {
        client_ts,
        client_id: change.client_id,
        mutation_id: change.mutation_id,
        base_version: change.base_version,
    };
    let answer = match change.op {
        Op::Upsert => write::upsert(named, payload, sent, base),
        Op::Delete => write::delete(named, sent),
    };
    // A change may leave client_ts out only for a table the server orders; elsewhere the write
    // refuses it, which a batch says in terms of the change.
    answer.map_err(|e| match e {
        SyncError::NullArgument("client_ts") if without_ts => bad("change has no \"client_ts\""),
        other => other,
    })
}

/// The table and row a change names.
fn named(change: &Change) -> Result<Named, SyncError> {
    Ok(match &change.table {
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
            let name = cstr(table)?;
            NAMING.set(true);
            let relid = regclass_in(&name);
            NAMING.set(false);
            let relid = relid.ok_or(SyncError::NullArgument("tbl"))?;
            let id = match &change.id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Named::table(relid, id)?
        }
    })
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

thread_local! {
    /// Set while a change's table name is read: a name in another database fails there with
    /// 0A000, which is the change's fault, though 0A elsewhere means the server refused a
    /// statement (see `SqlState::belongs_to_change`).
    static NAMING: Cell<bool> = const { Cell::new(false) };
}

/// A change's own error (see `SqlState::belongs_to_change`) comes back, to become its outcome;
/// any other aborts the whole call, as it would a PL/pgSQL exception block that does not name it.
fn own_errors<R>(result: Result<R, Failure>) -> Result<R, (SqlState, String)> {
    let naming = NAMING.replace(false);
    result.map_err(|f| {
        let from_the_name = naming && f.sqlstate.text().starts_with("0A");
        if f.sqlstate.belongs_to_change() || from_the_name {
            (f.sqlstate, f.message)
        } else {
            f.raise_again()
        }
    })
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

/// The batch: a JSON array of outcomes, one per change, in order, as text.
pub fn push(changes: &Batch<'_>, atomic: bool) -> Result<String, SyncError> {
    let count = changes.len();
    // An earlier call that failed while reading a name (atomic) left the flag set.
    NAMING.set(false);
    let mut per_change = Scratch::new("inventory_sync push change");

    // First pass: where each change's row sorts (a few bytes per change).
    let mut order: Vec<(Option<String>, RowKey, usize)> = Vec::with_capacity(count);
    for index in 0..count {
        let (tbl, key) = per_change.run(|| row_order(changes.element(index)));
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
                        write::batched(|| {
                            chunk
                                .iter()
                                .map(|&index| parse(changes.element(index)).and_then(apply).map(|a| a.to_text()))
                                .collect::<Result<Vec<String>, SyncError>>()
                        })
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
                    let item = changes.element(index);
                    if atomic {
                        return catching(|| write::batched(|| parse(item).and_then(apply)))
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
    Ok(out)
}

/// Which node each change of a batch is for, so that a backend can send each node its own push
/// (`sync_push_on`), which Citus runs whole there: `[{"node_key": k, "indexes": [i, …]}, …]`, the
/// changes' positions in the batch grouped by the node that holds their rows, in the order of each
/// group's first change; `node_key` is a key of the default table on that node, or null for the
/// changes no single node holds (a reference table's rows) and for those this cannot read (their
/// push answers their error). A text key's change goes with its row, though its side rows may lie
/// on another node. On a single server (or before `distribute()`), one group of every change.
pub fn groups(changes: &Batch<'_>) -> Result<String, SyncError> {
    let count = changes.len();
    let keys = pgrx::Spi::connect(|client| cluster::is_distributed(client).then(|| cluster::group_keys(client)));
    let mut groups: Vec<(Option<i64>, Vec<usize>)> = Vec::new();
    let Some(keys) = keys else {
        groups.push((None, (0..count).collect()));
        return Ok(groups_json(&groups));
    };
    let mut per_change = Scratch::new("inventory_sync push_groups change");
    let all: Vec<usize> = (0..count).collect();
    for chunk in all.chunks(CHUNK) {
        // A chunk in one subtransaction; if a change's table or key makes PostgreSQL raise, one
        // change at a time, as `push` does.
        let attempt = per_change
            .run(|| in_subtransaction(|| Ok(chunk.iter().map(|&index| node_of(changes, index)).collect::<Vec<_>>())));
        per_change.reset();
        let found = attempt.unwrap_or_else(|_| {
            chunk
                .iter()
                .map(|&index| {
                    let group = per_change.run(|| in_subtransaction(|| Ok(node_of(changes, index)))).ok().flatten();
                    per_change.reset();
                    group
                })
                .collect()
        });
        NAMING.set(false);
        for (&index, group) in chunk.iter().zip(found) {
            let key = group.and_then(|g| keys.get(&g).copied());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, indexes)) => indexes.push(index),
                None => groups.push((key, vec![index])),
            }
        }
    }
    Ok(groups_json(&groups))
}

/// The node group of change `index`'s row; None when the change does not name one (its push
/// answers why).
fn node_of(changes: &Batch<'_>, index: usize) -> Option<i32> {
    let change = Change::read(changes.element(index).entries().as_ref()).ok()?;
    let named = named(&change).ok()?;
    pgrx::Spi::connect(|client| write::group_of(client, &named)).ok().flatten()
}

fn groups_json(groups: &[(Option<i64>, Vec<usize>)]) -> String {
    let groups: Vec<Value> =
        groups.iter().map(|(key, indexes)| serde_json::json!({"node_key": key, "indexes": indexes})).collect();
    Value::Array(groups).to_string()
}
