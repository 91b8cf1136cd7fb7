//! The payload's `id` key check (`check_id_key`, core/src/rules.rs) and the payload kind check: never
//! panic, and accept an id key exactly when it names the same bigint as the `id` argument.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::error::SyncError;
use inventory_sync_fuzz::rules::{check_id_key, check_payload_kind, IdKey};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Case {
    id: i64,
    which: u8,
    text: String,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let id: i64 = u.arbitrary()?;
        let which = u.int_in_range(0..=4u8)?;
        let text = match u.int_in_range(0..=2u8)? {
            0 => id.to_string(),
            1 => format!("{}{}", u.choose(&["", "+", "-", "0", " ", "00"])?, id.unsigned_abs()),
            _ => u.arbitrary()?,
        };
        Ok(Case { id, which, text })
    }
}

fuzz_target!(|case: Case| {
    let Case { id, which, text } = case;
    let key = match which {
        0 => IdKey::Absent,
        1 => IdKey::Null,
        2 => IdKey::Number(&text),
        3 => IdKey::String(&text),
        _ => IdKey::Other(&text),
    };
    let same = matches!(key, IdKey::Absent | IdKey::Null)
        || (matches!(key, IdKey::Number(_) | IdKey::String(_)) && text.parse::<i64>() == Ok(id));
    match check_id_key(id, key) {
        Ok(()) => assert!(same, "{key:?} accepted for id {id}"),
        Err(SyncError::IdMismatch { column, id: shown, key: _ }) => {
            assert!(!same, "{key:?} refused for id {id}");
            assert_eq!((column.as_str(), shown), ("id", id.to_string()));
        }
        Err(e) => panic!("unexpected error {e:?}"),
    }
    match check_payload_kind(&text) {
        Ok(()) => assert_eq!(text, "object"),
        Err(e) => assert_eq!(e, SyncError::PayloadNotObject { got: text.clone() }),
    }
});
