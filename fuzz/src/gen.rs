//! Input generation shared by the targets: JSON values with odd numbers and strings, field names
//! that collide often, clocks that tie often.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Value};

use crate::merge::{Clock, Policy};

/// Field names: mostly a few (so writes and stored rows share keys), sometimes anything.
pub const FIELDS: [&str; 4] = ["a", "b", "stock", "price"];

pub fn field(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(7, 8)? {
        Ok(u.choose(&FIELDS)?.to_string())
    } else {
        let s: String = u.arbitrary()?;
        Ok(s.chars().take(8).collect())
    }
}

fn digits(u: &mut Unstructured<'_>, out: &mut String, max: u32) -> Result<()> {
    let n = u.int_in_range(1..=max)?;
    for i in 0..n {
        let d = u.int_in_range(if i == 0 && n > 1 { 1..=9 } else { 0..=9 })?;
        out.push(char::from(b'0' + d));
    }
    Ok(())
}

/// The text of a JSON number: small and big integers, decimals, exponents, `-0`.
pub fn number_text(u: &mut Unstructured<'_>) -> Result<String> {
    let mut s = String::new();
    match u.int_in_range(0..=6u8)? {
        0 => s = u.int_in_range(-3i64..=3)?.to_string(),
        1 => s = u.arbitrary::<i64>()?.to_string(),
        2 | 3 => {
            if u.arbitrary()? {
                s.push('-');
            }
            digits(u, &mut s, 30)?;
            if u.arbitrary()? {
                s.push('.');
                digits(u, &mut s, 20)?;
            }
        }
        4 => {
            if u.arbitrary()? {
                s.push('-');
            }
            digits(u, &mut s, 6)?;
            if u.arbitrary()? {
                s.push('.');
                digits(u, &mut s, 6)?;
            }
            s.push(*u.choose(&['e', 'E'])?);
            let sign = *u.choose(&["", "+", "-"])?;
            s.push_str(sign);
            let exp = if u.ratio(1, 16)? { u.int_in_range(0..=5000u32)? } else { u.int_in_range(0..=40u32)? };
            s.push_str(&exp.to_string());
        }
        5 => {
            // As numeric_out prints big values: plain digits, many of them.
            if u.arbitrary()? {
                s.push('-');
            }
            digits(u, &mut s, 200)?;
            if u.arbitrary()? {
                s.push('.');
                digits(u, &mut s, 200)?;
            }
        }
        _ => s = u.choose(&["-0", "0.0", "-0.0", "0e0", "1.000", "0.1", "1e-7"])?.to_string(),
    }
    Ok(s)
}

pub fn number(u: &mut Unstructured<'_>) -> Result<Value> {
    let text = number_text(u)?;
    Ok(serde_json::from_str(&text).unwrap_or_else(|e| panic!("generated number {text:?}: {e}")))
}

pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary()? {
        Ok(u.choose(&["", "NULL", "null", "\"", "\\", "{,}", "a\"b\\c", "\u{0}", " x ", "é", "😀", "{1,2}", "1"])?
            .to_string())
    } else {
        u.arbitrary()
    }
}

/// Any JSON value, nested at most `depth` deep.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let top = if depth == 0 { 3 } else { 5 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => number(u)?,
        3 => Value::String(string(u)?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(object(u, depth - 1, 3)?),
    })
}

/// A value for a field: mostly numbers (so deltas have something to add), else anything.
pub fn field_value(u: &mut Unstructured<'_>) -> Result<Value> {
    if u.ratio(1, 2)? {
        number(u)
    } else {
        value(u, 3)
    }
}

pub fn object(u: &mut Unstructured<'_>, depth: u32, max: usize) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=max)?;
    let mut m = Map::new();
    for _ in 0..n {
        let k = field(u)?;
        let v = if depth >= 3 { field_value(u)? } else { value(u, depth)? };
        m.insert(k, v);
    }
    Ok(m)
}

pub fn timestamp(u: &mut Unstructured<'_>) -> Result<i64> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => u.int_in_range(0..=4i64)?,
        2 => *u.choose(&[i64::MIN, i64::MIN + 1, -1, i64::MAX - 1, i64::MAX])?,
        _ => u.arbitrary()?,
    })
}

pub fn client_id(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 => None,
        1 | 2 => Some(u.choose(&["", "a", "b", "p1", "p2", "\u{0}", "é", "B"])?.to_string()),
        _ => Some(u.arbitrary()?),
    })
}

pub fn clock(u: &mut Unstructured<'_>) -> Result<Clock> {
    Ok(Clock { ts: timestamp(u)?, by: client_id(u)? })
}

pub fn policy(u: &mut Unstructured<'_>) -> Result<Policy> {
    Ok(*u.choose(&Policy::ALL)?)
}
