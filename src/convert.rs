//! Payload values (JSON) to column values, by each column type's own input function, so the result
//! is exactly what `INSERT … VALUES ('…')` would store: domains check their constraints, varchar
//! its length, enums their labels. A value that does not fit fails with PostgreSQL's own SQLSTATE
//! and a message that names the column.

use pgrx::pg_sys::{self, panic::CaughtError, PgTryBuilder};
use serde_json::Value;

use crate::error::SyncError;

/// How a column takes a JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// json or jsonb (or a domain over them): the JSON text itself.
    Json,
    /// An array type: a JSON array becomes an array literal.
    Array,
    /// Anything else: the scalar's text, as a client would type it.
    Scalar,
}

/// The text handed to the column type's input function; `None` is SQL NULL.
pub fn input_text(value: &Value, shape: Shape) -> Option<String> {
    match (value, shape) {
        (Value::Null, _) => None,
        (_, Shape::Json) => Some(value.to_string()),
        (Value::Array(items), Shape::Array) => Some(array_literal(items)),
        (Value::String(s), _) => Some(s.clone()),
        (Value::Number(n), _) => Some(n.to_string()),
        (Value::Bool(b), _) => Some(b.to_string()),
        // An object for a scalar column: its JSON text, which the input function will refuse
        // (or, for a composite type, may accept) with its own error.
        (other, _) => Some(other.to_string()),
    }
}

/// A JSON array as a PostgreSQL array literal: `["a", null, [1]]` → `{"a",NULL,{1}}`.
pub fn array_literal(items: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item {
            Value::Null => out.push_str("NULL"),
            Value::Array(inner) => out.push_str(&array_literal(inner)),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::String(s) => quote_element(&mut out, s),
            Value::Object(_) => quote_element(&mut out, &item.to_string()),
        }
    }
    out.push('}');
    out
}

fn quote_element(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Convert `text` with the input function of type `typid` (with `typmod`), for `column` of
/// `table`. `None` is SQL NULL, still passed through the input function so a domain's NOT NULL
/// and CHECK constraints apply.
pub fn to_datum(
    text: Option<&str>,
    typid: pg_sys::Oid,
    typmod: i32,
    column: &str,
    table: &str,
) -> Result<Option<pg_sys::Datum>, SyncError> {
    let cstr = match text {
        Some(t) => Some(std::ffi::CString::new(t).map_err(|_| SyncError::BadValue {
            column: column.to_string(),
            table: table.to_string(),
            sqlstate: pgrx::PgSqlErrorCode::ERRCODE_UNTRANSLATABLE_CHARACTER,
            cause: "text contains a NUL character".to_string(),
            detail: None,
        })?),
        None => None,
    };
    let is_null = cstr.is_none();
    PgTryBuilder::new(|| {
        let mut typinput = pg_sys::InvalidOid;
        let mut typioparam = pg_sys::InvalidOid;
        // SAFETY: plain catalog lookups and a call of the type's input function with a valid
        // C string (or NULL, which input functions are specified to accept).
        let datum = unsafe {
            pg_sys::getTypeInputInfo(typid, &mut typinput, &mut typioparam);
            let ptr = cstr.as_ref().map_or(std::ptr::null_mut(), |c| c.as_ptr().cast_mut());
            pg_sys::OidInputFunctionCall(typinput, ptr, typioparam, typmod)
        };
        Ok(if is_null { None } else { Some(datum) })
    })
    .catch_others(|e| {
        let report = match &e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        Err(SyncError::BadValue {
            column: column.to_string(),
            table: table.to_string(),
            sqlstate: report.sql_error_code(),
            cause: report.message().to_string(),
            detail: report.detail().map(str::to_string),
        })
    })
    .execute()
}

/// The canonical text of a datum of type `typid` (its output function): equal values of a type
/// have equal canonical text (`A0EE…` and `a0ee…` as uuid, `007` and `7` as integer).
pub fn canonical_text(datum: pg_sys::Datum, typid: pg_sys::Oid) -> String {
    let mut typoutput = pg_sys::InvalidOid;
    let mut is_varlena = false;
    // SAFETY: catalog lookup and the type's output function on a datum of that type.
    unsafe {
        pg_sys::getTypeOutputInfo(typid, &mut typoutput, &mut is_varlena);
        let out = pg_sys::OidOutputFunctionCall(typoutput, datum);
        std::ffi::CStr::from_ptr(out).to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_become_their_text() {
        assert_eq!(input_text(&json!("abc"), Shape::Scalar).as_deref(), Some("abc"));
        assert_eq!(input_text(&json!(12), Shape::Scalar).as_deref(), Some("12"));
        assert_eq!(input_text(&json!(true), Shape::Scalar).as_deref(), Some("true"));
        assert_eq!(input_text(&json!(null), Shape::Scalar), None);
        assert_eq!(input_text(&json!(null), Shape::Json), None);
    }

    #[test]
    fn numbers_keep_every_digit() {
        let v: Value = serde_json::from_str("12345678901234567890.123456789012345678901").unwrap();
        assert_eq!(
            input_text(&v, Shape::Scalar).as_deref(),
            Some("12345678901234567890.123456789012345678901")
        );
        // serde writes the exponent's sign; numeric_in reads both forms.
        let huge: Value = serde_json::from_str("1e400").unwrap();
        assert_eq!(input_text(&huge, Shape::Scalar).as_deref(), Some("1e+400"));
    }

    #[test]
    fn json_columns_take_json_text() {
        assert_eq!(input_text(&json!("abc"), Shape::Json).as_deref(), Some("\"abc\""));
        assert_eq!(input_text(&json!({"a": [1]}), Shape::Json).as_deref(), Some("{\"a\":[1]}"));
    }

    #[test]
    fn arrays_become_array_literals() {
        assert_eq!(array_literal(&[]), "{}");
        assert_eq!(
            input_text(&json!([1, null, [2, 3]]), Shape::Array).as_deref(),
            Some("{1,NULL,{2,3}}")
        );
        assert_eq!(
            array_literal(&[json!("a\"b"), json!("c\\d"), json!("NULL"), json!("{,}")]),
            r#"{"a\"b","c\\d","NULL","{,}"}"#
        );
        assert_eq!(array_literal(&[json!({"k": "v"})]), r#"{"{\"k\":\"v\"}"}"#);
    }
}
