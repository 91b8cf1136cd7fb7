//! Beyond row-level last-write-wins: the per-field merge rules, as plain Rust (no pgrx), so they
//! are tested exhaustively with property tests.
//!
//! A field's policy says how a write may change it:
//! - `lww` (the default): the whole write is ordered against the row's clock;
//! - `field_lww`: each field keeps the clock of the write that last set it, and a write changes
//!   the fields where it is newer, so edits of different fields all survive;
//! - `delta`: numbers; the client also sends the value it started from (`base`) and the server
//!   applies the difference to the current value, so concurrent adjustments add up
//!   (15 + (8 - 10) = 13). Without a base the field falls back to `lww`;
//! - `server_wins`: once set, a field keeps its value: a later write cannot change it. (A write
//!   stamped earlier than the one that set it is the real first setting, and replaces it, so
//!   every arrival order ends with the same value.)
//!
//! Clocks order writes by timestamp; at equal timestamps the greater `client_id` wins when both
//! writes carry one, so every arrival order ends in the same state. Without a client id, equal
//! counts as not newer: the write applies (the seed's rule).

use std::cmp::Ordering;
use std::str::FromStr;

use bigdecimal::{BigDecimal, Zero};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Lww,
    FieldLww,
    Delta,
    ServerWins,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Lww, Policy::FieldLww, Policy::Delta, Policy::ServerWins];

    pub fn parse(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Lww => "lww",
            Policy::FieldLww => "field_lww",
            Policy::Delta => "delta",
            Policy::ServerWins => "server_wins",
        }
    }
}

/// When a write happened: its timestamp (microseconds) and the device that made it, if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    pub ts: i64,
    pub by: Option<String>,
}

impl Clock {
    /// Whether a write stamped `self` may replace state stamped `stored`.
    pub fn beats(&self, stored: &Clock) -> bool {
        match self.ts.cmp(&stored.ts) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => match (&self.by, &stored.by) {
                (Some(mine), Some(theirs)) => mine >= theirs,
                _ => true,
            },
        }
    }

    /// The later of two clocks.
    pub fn max(self, other: Clock) -> Clock {
        if self.beats(&other) {
            self
        } else {
            other
        }
    }
}

/// A stored row (or tombstone): its fields, its clock and the clocks of its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub fields: Map<String, Value>,
    pub row: Clock,
    pub clocks: Map<String, Value>,
    pub deleted: bool,
    /// Whether a field present without a clock of its own has the row's clock (the default
    /// table: its keys exist only once written) or was never written (a tracked table: every
    /// column is there from the start, with its default).
    pub implicit_clocks: bool,
    /// For a row brought back after a delete: the delete's clock. A field without a clock of its
    /// own was not written since, so a write older than the delete does not apply to it.
    pub floor: Option<Clock>,
}

/// A write: its clock, the fields it sets and, for delta fields, the values it started from.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub clock: Clock,
    pub payload: &'a Map<String, Value>,
    pub base: Option<&'a Map<String, Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Applied,
    Conflict,
    Merged,
}

/// What a write does: the row's new fields and clocks, and which payload fields applied or lost.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub fields: Map<String, Value>,
    pub row: Clock,
    pub clocks: Map<String, Value>,
    pub applied: Vec<String>,
    pub lost: Vec<String>,
    /// Delta fields sent without a base: decided as `lww` instead.
    pub without_base: Vec<String>,
    pub status: Status,
    /// The floor to keep with the clocks (see `Stored::floor`).
    pub floor: Option<Clock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A delta field whose value, base or current value is not a number.
    NotANumber { field: String },
}

/// Field clocks are kept as JSON (`{"field": {"ts": …, "by": …}}`) next to the row.
pub fn clock_to_json(clock: &Clock) -> Value {
    let mut obj = Map::new();
    obj.insert("ts".into(), Value::from(clock.ts));
    if let Some(by) = &clock.by {
        obj.insert("by".into(), Value::from(by.clone()));
    }
    Value::Object(obj)
}

/// The floor kept among a row's field clocks under `key` (a name no field can have: the row's
/// timestamp column), taken out of them.
pub fn take_floor(clocks: &mut Map<String, Value>, key: &str) -> Option<Clock> {
    clocks.remove(key).as_ref().and_then(clock_from_json)
}

/// A merge's field clocks with its floor kept under `key`.
pub fn clocks_with_floor(m: &Merge, key: &str) -> Map<String, Value> {
    let mut clocks = m.clocks.clone();
    if let Some(floor) = &m.floor {
        clocks.insert(key.to_string(), clock_to_json(floor));
    }
    clocks
}

/// The field clocks of a row with no clock but its floor (a tombstone, or a row brought back
/// after one by a write that merges nothing): the delete's clock under `key`.
pub fn floor_only(key: &str, floor: &Clock) -> Map<String, Value> {
    Map::from_iter([(key.to_string(), clock_to_json(floor))])
}

pub fn clock_from_json(value: &Value) -> Option<Clock> {
    let ts = value.get("ts")?.as_i64()?;
    let by = value.get("by").and_then(Value::as_str).map(str::to_string);
    Some(Clock { ts, by })
}

fn number(value: &Value) -> Option<BigDecimal> {
    match value {
        Value::Number(n) => BigDecimal::from_str(&n.to_string()).ok(),
        _ => None,
    }
}

fn to_json_number(d: &BigDecimal) -> Value {
    // A zero with a negative scale (0E+38) prints as a run of zeros, which is not JSON (found by
    // the merge fuzz target): a zero is 0.
    if d.is_zero() {
        return Value::from(0);
    }
    serde_json::from_str(&d.to_plain_string()).expect("a decimal prints as a JSON number")
}

/// Apply `current + (sent - base)`; a missing or null current value counts as the base.
pub fn apply_delta(current: Option<&Value>, sent: &Value, base: &Value, field: &str) -> Result<Value, MergeError> {
    let bad = || MergeError::NotANumber { field: field.to_string() };
    let (sent, base) = (number(sent).ok_or_else(bad)?, number(base).ok_or_else(bad)?);
    let current = match current {
        None | Some(Value::Null) => base.clone(),
        Some(v) => number(v).ok_or_else(bad)?,
    };
    Ok(to_json_number(&(current + (sent - base))))
}

/// Merge `write` into `stored` (None: no row) under `policy`.
pub fn merge(
    stored: Option<&Stored>,
    write: &Incoming<'_>,
    policy: impl Fn(&str) -> Policy,
) -> Result<Merge, MergeError> {
    let mut keys: Vec<&String> = write.payload.keys().collect();
    keys.sort();
    // A delta field holds a number (or nothing), whichever way the write is decided: a string
    // stored there would make every later delta on it fail.
    if let Some(key) = keys.iter().find(|k| {
        let sent = &write.payload[k.as_str()];
        policy(k) == Policy::Delta && !sent.is_null() && number(sent).is_none()
    }) {
        return Err(MergeError::NotANumber { field: (*key).clone() });
    }
    let fresh = match stored {
        None => true,
        Some(s) => s.deleted && write.clock.beats(&s.row),
    };
    if fresh {
        // A new row (or one brought back from its tombstone): every field applies as sent.
        let clocks = keys.iter().map(|k| ((*k).clone(), clock_to_json(&write.clock))).collect();
        return Ok(Merge {
            fields: write.payload.clone(),
            row: write.clock.clone(),
            clocks,
            applied: keys.iter().map(|k| (*k).clone()).collect(),
            lost: Vec::new(),
            without_base: Vec::new(),
            status: Status::Applied,
            // Brought back after a delete: the fields it did not send are older than the delete.
            floor: stored.filter(|s| s.deleted).map(|s| s.row.clone()),
        });
    }
    let stored = stored.expect("not fresh, so stored");
    let mut merged = Merge {
        fields: stored.fields.clone(),
        row: stored.row.clone(),
        clocks: stored.clocks.clone(),
        applied: Vec::new(),
        lost: Vec::new(),
        without_base: Vec::new(),
        status: Status::Applied,
        floor: stored.floor.clone(),
    };
    if stored.deleted {
        // A tombstone newer than the write: nothing applies.
        merged.lost = keys.iter().map(|k| (*k).clone()).collect();
        merged.status = Status::Conflict;
        return Ok(merged);
    }
    let row_wins = write.clock.beats(&stored.row);
    for key in keys {
        let sent = &write.payload[key];
        let own = stored.clocks.get(key).and_then(clock_from_json);
        let implicit = (stored.implicit_clocks && stored.fields.contains_key(key)).then(|| stored.row.clone());
        if own.is_none() && implicit.is_none() && stored.floor.as_ref().is_some_and(|f| !write.clock.beats(f)) {
            // Not written since the row came back, and older than the delete before that.
            merged.lost.push(key.clone());
            continue;
        }
        let field_clock = own.or(implicit);
        let mut field_policy = policy(key);
        let base = write.base.and_then(|b| b.get(key));
        if field_policy == Policy::Delta && base.is_none() {
            merged.without_base.push(key.clone());
            field_policy = Policy::Lww;
        }
        let new_value = match field_policy {
            Policy::Lww => row_wins.then(|| sent.clone()),
            Policy::FieldLww => field_clock.as_ref().is_none_or(|c| write.clock.beats(c)).then(|| sent.clone()),
            Policy::ServerWins => {
                let unset = field_clock.is_none() || matches!(stored.fields.get(key), None | Some(Value::Null));
                if sent.is_null() {
                    // null is no value: it never replaces one, whatever its clock, so the first
                    // value is the same in every arrival order.
                    unset.then(|| sent.clone())
                } else {
                    let earlier = field_clock.as_ref().is_some_and(|c| !write.clock.beats(c));
                    (unset || earlier).then(|| sent.clone())
                }
            }
            Policy::Delta => Some(apply_delta(stored.fields.get(key), sent, base.expect("checked"), key)?),
        };
        match new_value {
            Some(value) => {
                merged.fields.insert(key.clone(), value);
                let clock = match (field_policy, field_clock) {
                    // A server_wins field takes the clock of the write that set it.
                    (Policy::ServerWins, _) | (_, None) => write.clock.clone(),
                    (_, Some(c)) => c.max(write.clock.clone()),
                };
                merged.clocks.insert(key.clone(), clock_to_json(&clock));
                merged.applied.push(key.clone());
            }
            None => merged.lost.push(key.clone()),
        }
    }
    let touched = !merged.applied.is_empty() || (write.payload.is_empty() && row_wins);
    if touched {
        merged.row = stored.row.clone().max(write.clock.clone());
    }
    merged.status = if merged.lost.is_empty() && (touched || write.payload.is_empty() && row_wins) {
        Status::Applied
    } else if merged.applied.is_empty() {
        Status::Conflict
    } else {
        Status::Merged
    };
    Ok(merged)
}

#[cfg(test)]
mod tests;
