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

use pgrx::datum::{IntoDatum, TimestampWithTimeZone};
use pgrx::fcinfo::direct_function_call;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys::{self, panic::CaughtError, PgTryBuilder};
use pgrx::PgSqlErrorCode;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::api;
use crate::engine::Op;
use crate::error::SyncError;
use crate::types::{Jsonb, RegClass};

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
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| bad(format!("change key \"{key}\" is nested too deeply"))),
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

/// Apply one change through the same functions the single calls use.
fn apply(change: Change) -> Result<Jsonb, SyncError> {
    let cstr = |s: &str| std::ffi::CString::new(s).map_err(|_| bad("change text contains a NUL character"));
    let ts_text = cstr(&change.client_ts)?;
    // SAFETY: timestamptz_in(cstring, oid, int4) on a valid C string; errors are PostgreSQL's.
    let client_ts = unsafe {
        direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_in,
            &[Some(ts_text.as_ptr().into()), pg_sys::InvalidOid.into_datum(), (-1i32).into_datum()],
        )
    };
    let (client_id, mutation_id) = (change.client_id, change.mutation_id);
    match change.table {
        None => {
            let id = match &change.id {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| bad(format!("id {} is not a bigint, as the default table's ids are", change.id)))?;
            match change.op {
                Op::Upsert => api::upsert_default(Some(id), change.payload, client_ts, client_id, mutation_id, change.base),
                Op::Delete => api::delete_default(Some(id), client_ts, client_id, mutation_id),
            }
        }
        Some(table) => {
            let name = cstr(&table)?;
            // SAFETY: regclassin(cstring) resolves the name as a regclass literal would; an
            // unknown table raises 42P01.
            let relid = unsafe { direct_function_call::<pg_sys::Oid>(pg_sys::regclassin, &[Some(name.as_ptr().into())]) };
            let tbl = relid.map(RegClass);
            // The tracked-table calls route the default table, named as sync_pull names it, to
            // its own calls.
            let id = match &change.id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match change.op {
                Op::Upsert => {
                    api::upsert_tracked(tbl, Some(id), change.payload, client_ts, client_id, mutation_id, change.base)
                }
                Op::Delete => api::delete_tracked(tbl, Some(id), client_ts, client_id, mutation_id),
            }
        }
    }
}

/// An error as an outcome: `{"status": "error", "id", "sqlstate", "message"}`.
fn error_outcome(id: &Value, sqlstate: PgSqlErrorCode, message: &str) -> String {
    serde_json::json!({
        "status": "error",
        "id": id,
        "sqlstate": sqlstate_text(sqlstate),
        "message": message,
    })
    .to_string()
}

/// The five-character SQLSTATE of an error code.
fn sqlstate_text(code: PgSqlErrorCode) -> String {
    let mut n = code as i32;
    (0..5)
        .map(|_| {
            let c = ((n & 0x3F) + i32::from(b'0')) as u8 as char;
            n >>= 6;
            c
        })
        .collect()
}

fn caught_report(e: &CaughtError) -> (PgSqlErrorCode, String) {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => (r.sql_error_code(), r.message().to_string()),
        CaughtError::RustPanic { ereport, .. } => (ereport.sql_error_code(), ereport.message().to_string()),
    }
}

/// Run `f` in a subtransaction: kept if it succeeds, rolled back (and turned into an error
/// outcome's SQLSTATE and message) if it returns an error or raises one.
/// Whether an error is the change's own fault (bad input, a constraint, missing rights), and so
/// becomes its `error` outcome. The others are about the transaction or the server, not the
/// change: a serialization failure or deadlock (the caller retries the whole call), a cancel or
/// statement timeout, a lock timeout, running out of resources, an internal error. Those abort
/// the whole call, as they would a PL/pgSQL exception block that does not name them.
fn belongs_to_change(code: PgSqlErrorCode) -> bool {
    let state = sqlstate_text(code);
    let class = &state[..2];
    !(["08", "25", "40", "53", "57", "58", "XX"].contains(&class) || ["55P03", "55006"].contains(&state.as_str()))
}

fn in_subtransaction<R>(f: impl FnOnce() -> Result<R, SyncError>) -> Result<R, (PgSqlErrorCode, String)> {
    // SAFETY: the same sequence as PL/pgSQL's exception blocks: begin, run, then release or roll
    // back, restoring the memory context and resource owner the caller had.
    unsafe {
        let memory = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            f().map_err(|e| (e.sqlstate(), e.to_string(), Err(e)))
        }))
        .catch_others(|e| {
            let (code, message) = caught_report(&e);
            Err((code, message, Ok(e)))
        })
        .execute();
        match result {
            Ok(answer) => {
                pg_sys::ReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(memory);
                pg_sys::CurrentResourceOwner = owner;
                Ok(answer)
            }
            Err((code, message, caught)) => {
                pg_sys::MemoryContextSwitchTo(memory);
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(memory);
                pg_sys::CurrentResourceOwner = owner;
                match caught {
                    _ if belongs_to_change(code) => Err((code, message)),
                    Ok(raised) => raised.rethrow(),
                    // The extension's own such error (a write that could not settle: 40001).
                    Err(returned) => returned.raise(),
                }
            }
        }
    }
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
    let mut per_change = PgMemoryContexts::new("inventory_sync push change");

    // First pass: where each change's row sorts (a few bytes per change).
    let mut order: Vec<(Option<String>, RowKey, usize)> = Vec::with_capacity(count);
    for index in 0..count {
        // SAFETY: nothing allocated here outlives the iteration; the context is reset.
        let (tbl, key) = unsafe { per_change.switch_to(|_| row_order(changes.array_element(index))) };
        order.push((tbl, key, index));
        // SAFETY: as above.
        unsafe { per_change.reset() };
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
            // SAFETY: the outcomes are copied out before the context is reset.
            let attempt = unsafe {
                per_change.switch_to(|_| {
                    crate::types::answers_in(|| {
                        in_subtransaction(|| {
                            chunk
                                .iter()
                                .map(|&index| parse(changes.array_element(index)).and_then(apply).map(|a| a.to_text()))
                                .collect::<Result<Vec<String>, SyncError>>()
                        })
                    })
                })
            };
            // SAFETY: as above.
            unsafe { per_change.reset() };
            if let Ok(texts) = attempt {
                for (&index, text) in chunk.iter().zip(texts) {
                    outcomes[index] = text;
                }
                continue;
            }
        }
        for &index in chunk {
            // SAFETY: what runs in the per-change context is copied out before the context is
            // reset.
            let outcome = unsafe { per_change.switch_to(|_| crate::types::answers_in(|| {
                let item = changes.array_element(index);
                // The id, for an error outcome: as sent, when the change has one.
                let id = item.field("id").and_then(|f| serde_json::from_str(&f.to_text()).ok()).unwrap_or(Value::Null);
                if atomic {
                    let answer = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| parse(item).and_then(apply)))
                        .catch_others(|e| {
                            let (code, message) = caught_report(&e);
                            Err(SyncError::InChange { index, sqlstate: code, message })
                        })
                        .execute()
                        .map_err(|e| match e {
                            e @ SyncError::InChange { .. } => e,
                            other => SyncError::InChange { index, sqlstate: other.sqlstate(), message: other.to_string() },
                        });
                    answer.map(|a| a.to_text())
                } else {
                    Ok(match in_subtransaction(|| parse(item).and_then(apply)) {
                        Ok(answer) => answer.to_text(),
                        Err((code, message)) => error_outcome(&id, code, &message),
                    })
                }
            })) }?;
            outcomes[index] = outcome;
            // SAFETY: nothing allocated in the context outlives this change: the outcome was
            // copied out.
            unsafe { per_change.reset() };
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

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn sqlstates_print_as_five_characters() {
        assert_eq!(sqlstate_text(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE), "22023");
        assert_eq!(sqlstate_text(PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION), "22P02");
        assert_eq!(sqlstate_text(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE), "42P01");
        assert_eq!(sqlstate_text(PgSqlErrorCode::ERRCODE_GENERATED_ALWAYS), "428C9");
    }

    #[test]
    fn only_the_changes_own_errors_become_outcomes() {
        use PgSqlErrorCode::*;
        for own in [ERRCODE_INVALID_PARAMETER_VALUE, ERRCODE_UNDEFINED_COLUMN, ERRCODE_INSUFFICIENT_PRIVILEGE,
                    ERRCODE_CHECK_VIOLATION, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, ERRCODE_RAISE_EXCEPTION,
                    ERRCODE_STATEMENT_TOO_COMPLEX] {
            assert!(belongs_to_change(own), "{own:?}");
        }
        for other in [ERRCODE_T_R_SERIALIZATION_FAILURE, ERRCODE_T_R_DEADLOCK_DETECTED, ERRCODE_QUERY_CANCELED,
                      ERRCODE_LOCK_NOT_AVAILABLE, ERRCODE_OUT_OF_MEMORY, ERRCODE_INTERNAL_ERROR,
                      ERRCODE_READ_ONLY_SQL_TRANSACTION, ERRCODE_ADMIN_SHUTDOWN, ERRCODE_OBJECT_IN_USE] {
            assert!(!belongs_to_change(other), "{other:?}");
        }
    }
}
