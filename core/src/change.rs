//! The shape of one change of a `sync_push` batch: which keys it has and what they hold, read
//! from the change object's own keys. `payload` and `base` are only looked at (present, an
//! object), never parsed: the write takes them as they are.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::SyncError;
use crate::rules::Op;

const KEYS: [&str; 9] =
    ["op", "table", "id", "payload", "client_ts", "client_id", "mutation_id", "base", "base_version"];

/// A change object's keys and their values as unparsed JSON text.
pub type Entries = BTreeMap<String, Box<RawValue>>;

/// One change, read from its object: everything but the payload and base themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    pub table: Option<String>,
    /// A JSON number or string.
    pub id: Value,
    /// Whether the change carries a payload (an upsert always does).
    pub payload: bool,
    /// Whether the change carries a base (an object; upserts only).
    pub base: bool,
    /// Needed unless the server orders the table's writes (the write says so, as
    /// `change has no "client_ts"`).
    pub client_ts: Option<String>,
    pub client_id: Option<String>,
    pub mutation_id: Option<String>,
    /// The version the row must still be at (`''`: no row), as sent; checked by the write.
    pub base_version: Option<String>,
}

fn bad(why: impl Into<String>) -> SyncError {
    SyncError::BadChange(why.into())
}

/// A small key's value (op, id, table, client_ts, client ids), parsed.
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

impl Change {
    /// Read a change object (None: the change is not an object): its shape only; the values are
    /// checked by the write itself.
    pub fn read(obj: Option<&Entries>) -> Result<Change, SyncError> {
        let Some(obj) = obj else {
            return Err(bad("change must be a JSON object"));
        };
        if let Some(unknown) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(bad(format!("unknown key \"{unknown}\" in change")));
        }
        let op = match small(obj, "op")? {
            Value::Null => Op::Upsert,
            Value::String(s) if s == "upsert" => Op::Upsert,
            Value::String(s) if s == "delete" => Op::Delete,
            _ => return Err(bad("change key \"op\" must be \"upsert\" or \"delete\"")),
        };
        let id = match small(obj, "id")? {
            Value::Null => return Err(bad("change has no \"id\"")),
            id @ (Value::Number(_) | Value::String(_)) => id,
            _ => return Err(bad("change key \"id\" must be a number or a string")),
        };
        let client_ts = optional_string(obj, "client_ts")?;
        let payload = match (op, presence(obj, "payload").0) {
            (Op::Upsert, false) => return Err(bad("an upsert change needs a \"payload\"")),
            (Op::Upsert, true) => true,
            (Op::Delete, false) => false,
            (Op::Delete, true) => return Err(bad("a delete change takes no \"payload\"")),
        };
        let base = match (op, presence(obj, "base")) {
            (_, (false, _)) => false,
            (Op::Upsert, (true, true)) => true,
            (Op::Upsert, (true, false)) => return Err(bad("change key \"base\" must be a JSON object")),
            (Op::Delete, _) => return Err(bad("a delete change takes no \"base\"")),
        };
        Ok(Change {
            op,
            table: optional_string(obj, "table")?,
            id,
            payload,
            base,
            client_ts,
            client_id: optional_string(obj, "client_id")?,
            mutation_id: optional_string(obj, "mutation_id")?,
            base_version: optional_string(obj, "base_version")?,
        })
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn read(json: &str) -> Result<Change, SyncError> {
        let obj: Option<Entries> = serde_json::from_str(json).ok();
        Change::read(obj.as_ref())
    }

    fn refused(json: &str) -> String {
        match read(json) {
            Err(SyncError::BadChange(why)) => why,
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn a_whole_change() {
        let c = read(
            r#"{"op": "upsert", "table": "public.t", "id": "7", "payload": {"a": [1]},
                        "base": {"a": 0}, "client_ts": "2024-03-01", "client_id": "d", "mutation_id": "m",
                        "base_version": "0000000000000001"}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Change {
                op: Op::Upsert,
                table: Some("public.t".into()),
                id: Value::from("7"),
                payload: true,
                base: true,
                client_ts: Some("2024-03-01".into()),
                client_id: Some("d".into()),
                mutation_id: Some("m".into()),
                base_version: Some("0000000000000001".into()),
            }
        );
        let d = read(r#"{"op": "delete", "id": 3, "client_ts": "x"}"#).unwrap();
        assert_eq!((d.op, d.payload, d.base, d.table), (Op::Delete, false, false, None));
        // op defaults to upsert; null counts as absent.
        assert_eq!(read(r#"{"id": 1, "payload": {}, "client_ts": "x", "base": null}"#).unwrap().op, Op::Upsert);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        assert_eq!(refused("[1]"), "change must be a JSON object");
        assert_eq!(refused(r#"{"id": 1, "x": 2}"#), "unknown key \"x\" in change");
        assert_eq!(refused(r#"{"op": "merge", "id": 1}"#), "change key \"op\" must be \"upsert\" or \"delete\"");
        assert_eq!(refused(r#"{"payload": {}, "client_ts": "x"}"#), "change has no \"id\"");
        assert_eq!(refused(r#"{"id": true, "client_ts": "x"}"#), "change key \"id\" must be a number or a string");
        // Without client_ts: read; the write refuses it unless the server orders the table.
        assert_eq!(read(r#"{"id": 1, "payload": {}}"#).unwrap().client_ts, None);
        assert_eq!(refused(r#"{"id": 1, "client_ts": 5, "payload": {}}"#), "change key \"client_ts\" must be a string");
        assert_eq!(refused(r#"{"id": 1, "client_ts": "x"}"#), "an upsert change needs a \"payload\"");
        assert_eq!(
            refused(r#"{"op": "delete", "id": 1, "client_ts": "x", "payload": {}}"#),
            "a delete change takes no \"payload\""
        );
        assert_eq!(
            refused(r#"{"id": 1, "client_ts": "x", "payload": {}, "base": [1]}"#),
            "change key \"base\" must be a JSON object"
        );
        assert_eq!(
            refused(r#"{"op": "delete", "id": 1, "client_ts": "x", "base": {}}"#),
            "a delete change takes no \"base\""
        );
        assert_eq!(
            refused(r#"{"id": 1, "client_ts": "x", "payload": {}, "base_version": 3}"#),
            "change key \"base_version\" must be a string"
        );
        assert_eq!(
            refused(r#"{"id": 1, "client_ts": "x", "payload": {}, "table": 3}"#),
            "change key \"table\" must be a string"
        );
        let deep = format!(
            r#"{{"id": 1, "client_ts": "x", "payload": {{}}, "table": {}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(refused(&deep), "change key \"table\" is nested too deeply");
    }
}
