//! JSON arrays as PostgreSQL array literals (`array_literal`/`input_text`, core/src/values.rs):
//! reading the literal back (as array_in does) gives exactly the elements sent, so no string can
//! add, drop or split elements, and a string "NULL" stays a string.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::convert::{array_literal, input_text, Shape};
use inventory_sync_fuzz::gen;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// An element as array_in reads it.
#[derive(Debug, PartialEq)]
enum Elem {
    Null,
    Quoted(String),
    Unquoted(String),
    Array(Vec<Elem>),
}

/// array_in's reading of `{…}` (the subset: quoting, backslash escapes, NULL, nesting).
fn parse(s: &[u8], i: &mut usize) -> Vec<Elem> {
    assert_eq!(s[*i], b'{');
    *i += 1;
    let mut out = Vec::new();
    if s[*i] == b'}' {
        *i += 1;
        return out;
    }
    loop {
        match s[*i] {
            b'{' => out.push(Elem::Array(parse(s, i))),
            b'"' => {
                *i += 1;
                let mut bytes = Vec::new();
                loop {
                    match s[*i] {
                        b'\\' => {
                            bytes.push(s[*i + 1]);
                            *i += 2;
                        }
                        b'"' => {
                            *i += 1;
                            break;
                        }
                        c => {
                            bytes.push(c);
                            *i += 1;
                        }
                    }
                }
                out.push(Elem::Quoted(String::from_utf8(bytes).expect("UTF-8 in, UTF-8 out")));
            }
            _ => {
                let start = *i;
                while !matches!(s[*i], b',' | b'}') {
                    assert!(
                        !matches!(s[*i], b'"' | b'{' | b'\\') && !s[*i].is_ascii_whitespace(),
                        "special byte unquoted"
                    );
                    *i += 1;
                }
                let word = std::str::from_utf8(&s[start..*i]).unwrap().to_string();
                out.push(if word.eq_ignore_ascii_case("null") { Elem::Null } else { Elem::Unquoted(word) });
            }
        }
        match s[*i] {
            b',' => *i += 1,
            b'}' => {
                *i += 1;
                return out;
            }
            c => panic!("unexpected {:?} after an element", c as char),
        }
    }
}

fn expected(items: &[Value]) -> Vec<Elem> {
    items
        .iter()
        .map(|v| match v {
            Value::Null => Elem::Null,
            Value::Array(inner) => Elem::Array(expected(inner)),
            Value::Number(n) => Elem::Unquoted(n.to_string()),
            Value::Bool(b) => Elem::Unquoted(b.to_string()),
            Value::String(s) => Elem::Quoted(s.clone()),
            Value::Object(_) => Elem::Quoted(v.to_string()),
        })
        .collect()
}

#[derive(Debug)]
struct Items(Vec<Value>);

impl<'a> Arbitrary<'a> for Items {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u.int_in_range(0..=5)?;
        Ok(Items((0..n).map(|_| gen::value(u, 4)).collect::<arbitrary::Result<_>>()?))
    }
}

fuzz_target!(|items: Items| {
    let items = items.0;
    let literal = array_literal(&items);
    let mut i = 0;
    let got = parse(literal.as_bytes(), &mut i);
    assert_eq!(i, literal.len(), "trailing text in {literal:?}");
    assert_eq!(got, expected(&items), "{literal:?}");

    let array = Value::Array(items);
    assert_eq!(input_text(&array, Shape::Array), Some(literal));
    for v in [&array, &Value::Null] {
        assert_eq!(input_text(v, Shape::Json), (!v.is_null()).then(|| v.to_string()));
        assert_eq!(input_text(v, Shape::Scalar).is_none(), v.is_null());
    }
});
