//! A `sync_push_json` batch as JSON text: where each element of the top-level array lies, found
//! without building any element. PostgreSQL's `json` input has already checked that the text is
//! valid JSON, so this only follows strings and brackets; it keeps no stack, so elements nested
//! to any depth PostgreSQL accepts are found (a recursive parser stops at a fixed depth).

use std::ops::Range;

use crate::error::SyncError;

/// The byte ranges of the top-level array's elements, in order. Any other JSON value:
/// `NotAnArray`, naming its JSON type as `jsonb_typeof` does. `text` must be valid JSON.
pub fn array_elements(text: &str) -> Result<Vec<Range<usize>>, SyncError> {
    let bytes = text.as_bytes();
    let skip_space = |mut i: usize| {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    };
    let mut i = skip_space(0);
    let got = match bytes.get(i) {
        Some(b'[') => None,
        Some(b'{') => Some("object"),
        Some(b'"') => Some("string"),
        Some(b't' | b'f') => Some("boolean"),
        Some(b'n') => Some("null"),
        _ => Some("number"),
    };
    if let Some(got) = got {
        return Err(SyncError::NotAnArray { got: got.into() });
    }
    let mut elements = Vec::new();
    i += 1;
    loop {
        i = skip_space(i);
        match bytes.get(i) {
            Some(b']') | None => return Ok(elements),
            Some(b',') => i = skip_space(i + 1),
            _ => {}
        }
        let start = i;
        let (mut depth, mut in_string) = (0usize, false);
        while i < bytes.len() {
            let b = bytes[i];
            if in_string {
                match b {
                    b'\\' => i += 1,
                    b'"' => in_string = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' if depth == 0 => break,
                    b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let mut end = i;
        while end > start && matches!(bytes[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
            end -= 1;
        }
        elements.push(start..end);
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            ".*".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z\"\\\\,\\]\\[{} ]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn each_element_is_found_as_written(elements in prop::collection::vec(value(), 0..6), pretty in any::<bool>()) {
            let text = if pretty {
                serde_json::to_string_pretty(&elements).unwrap()
            } else {
                serde_json::to_string(&elements).unwrap()
            };
            let found: Vec<Value> = array_elements(&text)
                .unwrap()
                .into_iter()
                .map(|r| serde_json::from_str(&text[r]).unwrap())
                .collect();
            prop_assert_eq!(found, elements);
        }
    }

    #[test]
    fn spaces_escapes_and_depth() {
        let text = " [ 1 ,\n\"a,\\\"]\" , { \"k\": [ [ ] ] } , [] ]  ";
        let found: Vec<&str> = array_elements(text).unwrap().into_iter().map(|r| &text[r]).collect();
        assert_eq!(found, ["1", "\"a,\\\"]\"", "{ \"k\": [ [ ] ] }", "[]"]);
        assert_eq!(array_elements("[]").unwrap(), vec![]);
        assert_eq!(array_elements(" [ ] ").unwrap(), vec![]);
        let deep = format!("[{}{}]", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(array_elements(&deep).unwrap(), vec![1..20_001]);
    }

    #[test]
    fn other_values_are_not_arrays() {
        for (text, got) in
            [("{}", "object"), (" \"x\"", "string"), ("true", "boolean"), ("null", "null"), ("-1", "number")]
        {
            assert_eq!(array_elements(text), Err(SyncError::NotAnArray { got: got.into() }), "{text}");
        }
    }
}
