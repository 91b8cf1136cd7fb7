//! Every error a caller can provoke, each with its SQLSTATE, detail and hint.
//!
//! Errors raised by PostgreSQL itself inside our statements (42501 permission denied, 40001
//! serialization failure, 23xxx constraint violations) pass through untouched: they already carry
//! the right SQLSTATE.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A required argument was SQL NULL.
    #[error("{0} must not be null")]
    NullArgument(&'static str),

    /// The payload is valid JSON but not an object.
    #[error("payload must be a JSON object")]
    PayloadNotObject { got: String },

    /// `client_ts` is `infinity` or `-infinity`.
    #[error("client_ts must be a finite timestamp")]
    InfiniteTimestamp { value: &'static str },

    /// The payload's reserved `id` key names another row than the `id` argument.
    #[error("payload key \"id\" does not match the id argument")]
    IdMismatch { id: i64, key: String },
}

impl SyncError {
    pub fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            SyncError::NullArgument(_) => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            SyncError::PayloadNotObject { .. } | SyncError::IdMismatch { .. } => {
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
            }
            SyncError::InfiniteTimestamp { .. } => {
                PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW
            }
        }
    }

    pub fn detail(&self) -> Option<String> {
        match self {
            SyncError::NullArgument(_) => None,
            SyncError::PayloadNotObject { got } => {
                Some(format!("The payload is of JSON type {got}; it must hold the item's fields by name."))
            }
            SyncError::InfiniteTimestamp { value } => {
                Some(format!("The client_ts argument is {value}, which cannot order writes."))
            }
            SyncError::IdMismatch { id, key } => {
                Some(format!("The id argument is {id} but the payload's \"id\" key is {key}."))
            }
        }
    }

    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SyncError::NullArgument("client_ts") | SyncError::InfiniteTimestamp { .. } => {
                Some("Send the time at which the device made the change.")
            }
            SyncError::NullArgument("payload") => {
                Some("Send '{}' to change nothing but the timestamp.")
            }
            SyncError::IdMismatch { .. } => {
                Some("Leave the key out, or send the same id in both places.")
            }
            _ => None,
        }
    }

    /// Raise this error as a PostgreSQL ERROR; the current transaction (or subtransaction) aborts,
    /// so nothing the call did is kept.
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.sqlstate(), self.to_string(), "inventory_sync");
        if let Some(detail) = self.detail() {
            report = report.set_detail(detail);
        }
        if let Some(hint) = self.hint() {
            report = report.set_hint(hint);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ereport(ERROR) returned")
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn messages_follow_postgres_style() {
        let all = [
            SyncError::NullArgument("id"),
            SyncError::PayloadNotObject { got: "array".into() },
            SyncError::InfiniteTimestamp { value: "infinity" },
            SyncError::IdMismatch { id: 1, key: "2".into() },
        ];
        for e in all {
            let msg = e.to_string();
            assert!(!msg.ends_with('.'), "{msg}");
            assert!(msg.chars().next().unwrap().is_lowercase(), "message must start lowercase: {msg}");
            for sentence in [e.detail(), e.hint().map(String::from)].into_iter().flatten() {
                assert!(sentence.ends_with('.'), "detail/hint must be a sentence: {sentence}");
                assert!(sentence.chars().next().unwrap().is_uppercase(), "{sentence}");
            }
        }
    }

    #[test]
    fn sqlstates() {
        assert_eq!(
            SyncError::NullArgument("id").sqlstate(),
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED
        );
        assert_eq!(
            SyncError::IdMismatch { id: 1, key: "2".into() }.sqlstate(),
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        );
        assert_eq!(
            SyncError::InfiniteTimestamp { value: "infinity" }.sqlstate(),
            PgSqlErrorCode::ERRCODE_DATETIME_FIELD_OVERFLOW
        );
    }
}
