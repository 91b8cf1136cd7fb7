//! One change of a `sync_push` batch (`Change::read`, core/src/change.rs), read from any JSON
//! object (built from the fuzzer's bytes, keys mostly from the real ones): never panics; refuses
//! only with `BadChange`; what it accepts has the shape a write needs: an id that is a number or
//! a string, client_ts and base_version as given (each a string, or absent: then the write
//! decides), an upsert with a payload, a delete with neither payload nor base, and only the nine
//! known keys.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::change::{Change, Entries};
use inventory_sync_fuzz::error::SyncError;
use inventory_sync_fuzz::rules::Op;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const KEYS: [&str; 10] =
    ["op", "table", "id", "payload", "client_ts", "client_id", "mutation_id", "base", "base_version", "other"];

fn value(u: &mut Unstructured<'_>, depth: u32) -> arbitrary::Result<Value> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.choose(&["upsert", "delete", "merge", "", "2024-03-01 10:00+00"])?.to_string()),
        4 => Value::from(u.arbitrary::<String>()?),
        5 if depth < 4 => {
            Value::Array((0..u.int_in_range(0..=3u8)?).map(|_| value(u, depth + 1)).collect::<Result<_, _>>()?)
        }
        6 if depth < 4 => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3u8)? {
                m.insert(u.arbitrary()?, value(u, depth + 1)?);
            }
            Value::Object(m)
        }
        _ => Value::from(u.arbitrary::<f64>()?),
    })
}

#[derive(Debug)]
struct Case(String);

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut obj = Map::new();
        for _ in 0..u.int_in_range(0..=9u8)? {
            let key = if u.ratio(9, 10)? { u.choose(&KEYS)?.to_string() } else { u.arbitrary()? };
            obj.insert(key, value(u, 0)?);
        }
        Ok(Case(Value::Object(obj).to_string()))
    }
}

fuzz_target!(|case: Case| {
    let entries: Entries = serde_json::from_str(&case.0).expect("an object's JSON reads back as entries");
    match Change::read(Some(&entries)) {
        Err(SyncError::BadChange(_)) => {}
        Err(other) => panic!("{}: refused with {other:?}", case.0),
        Ok(change) => {
            assert!(entries.keys().all(|k| KEYS[..9].contains(&k.as_str())), "{}: unknown key accepted", case.0);
            assert!(matches!(change.id, Value::Number(_) | Value::String(_)), "{}", case.0);
            for (key, read) in [("client_ts", &change.client_ts), ("base_version", &change.base_version)] {
                let given = entries.get(key).map(|r| r.get().to_string());
                match read {
                    Some(text) => assert_eq!(given, Some(Value::from(text.clone()).to_string()), "{}", case.0),
                    None => assert!(matches!(given.as_deref(), None | Some("null")), "{}: {key} dropped", case.0),
                }
            }
            match change.op {
                Op::Upsert => assert!(change.payload, "{}: an upsert without payload", case.0),
                Op::Delete => assert!(!change.payload && !change.base, "{}: a delete with payload or base", case.0),
            }
        }
    }
});
