//! Payload values (JSON) as the text a column type's input function reads: what a client would
//! type in `INSERT … VALUES ('…')`. The extension then converts the text with the column type's
//! own input function, so domains, varchar lengths and enum labels are checked by PostgreSQL.

use serde_json::Value;

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
        assert_eq!(input_text(&v, Shape::Scalar).as_deref(), Some("12345678901234567890.123456789012345678901"));
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
        assert_eq!(input_text(&json!([1, null, [2, 3]]), Shape::Array).as_deref(), Some("{1,NULL,{2,3}}"));
        assert_eq!(
            array_literal(&[json!("a\"b"), json!("c\\d"), json!("NULL"), json!("{,}")]),
            r#"{"a\"b","c\\d","NULL","{,}"}"#
        );
        assert_eq!(array_literal(&[json!({"k": "v"})]), r#"{"{\"k\":\"v\"}"}"#);
    }
}
