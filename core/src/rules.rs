//! The conflict rules in plain Rust: no PostgreSQL needed, so `cargo test` checks them in
//! milliseconds and proptest can throw thousands of cases at them.
//!
//! Timestamps are PostgreSQL's `TimestampTz`: microseconds since 2000-01-01 UTC.
//!
//! The last-write-wins comparison itself (`stored.updated_at <= client_ts` applies) is not here:
//! it lives in the statements of `sql`, because only
//! there is it atomic with the write.

use crate::error::SyncError;

pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// How many times a write goes round (lock, merge or insert) before giving up with 40001. Each
/// round that does not decide means a concurrent transaction inserted or deleted the row in
/// between; two rounds settle any realistic race.
pub const MAX_ROUNDS: usize = 10;

/// What a write does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// Who orders a table's writes (`set_ordering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ordering {
    /// The devices' clocks: the write with the later `client_ts` wins (the default).
    ClientTs,
    /// The server, by arrival: every write is stamped by the server's clock, after the row's
    /// own, so the later write to arrive wins; conflicts come only from `base_version`.
    Server,
}

impl Ordering {
    pub fn parse(name: &str) -> Option<Ordering> {
        [Ordering::ClientTs, Ordering::Server].into_iter().find(|o| o.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::ClientTs => "client_ts",
            Ordering::Server => "server",
        }
    }
}

/// How `inventory_sync.field_policies` records that the server orders a table's writes: this
/// policy on its write-timestamp column (which takes no merge policy).
pub const SERVER_CLOCK: &str = "server_clock";

/// The timestamp of a write the server orders, at server time `now`, to a row stamped `stored`
/// (None: no row or tombstone): now, or one microsecond after the row if that is later (a clock
/// stepped back, or a row written by a device clock ahead), so the write is always the newer.
pub fn server_stamp(now: i64, stored: Option<i64>) -> i64 {
    stored.map_or(now, |s| now.max(s.saturating_add(1)))
}

/// What the clock-skew guard says about a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skew {
    Accept,
    /// `client_ts` runs ahead of the server by more than the allowed margin.
    Reject {
        ahead_by_micros: i64,
    },
}

/// The clock-skew guard: a write stamped later than `server_now + max_skew_seconds` is rejected.
/// A negative margin turns the guard off. A write exactly at the limit is accepted.
pub fn check_clock_skew(client_ts: i64, server_now: i64, max_skew_seconds: i32) -> Skew {
    if max_skew_seconds < 0 {
        return Skew::Accept;
    }
    let limit = server_now.saturating_add(i64::from(max_skew_seconds) * MICROS_PER_SECOND);
    if client_ts > limit {
        // Saturating: a client_ts near the end of time against a clock near its start (found by
        // the clock_skew fuzz target) would overflow.
        Skew::Reject { ahead_by_micros: client_ts.saturating_sub(server_now) }
    } else {
        Skew::Accept
    }
}

/// The payload's reserved `id` key, as jsonb describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKey<'a> {
    Absent,
    /// `"id": null`: carries no id, so it names no other row.
    Null,
    /// A JSON number, in jsonb's text form.
    Number(&'a str),
    /// A JSON string: JavaScript clients send ids above 2^53 as strings.
    String(&'a str),
    /// Any other JSON type (`true`, an array, an object), by its jsonb type name.
    Other(&'a str),
}

impl<'a> IdKey<'a> {
    /// The key from jsonb's description of it: its type name (None: absent) and its text.
    pub fn classify(kind: Option<&'a str>, text: Option<&'a str>) -> IdKey<'a> {
        match (kind, text) {
            (None, _) => IdKey::Absent,
            (Some("null"), _) => IdKey::Null,
            (Some("number"), Some(t)) => IdKey::Number(t),
            (Some("string"), Some(t)) => IdKey::String(t),
            (Some(other), _) => IdKey::Other(other),
        }
    }
}

/// The `id` key may repeat the `id` argument (clients often send the whole record) but never name
/// another row.
pub fn check_id_key(id: i64, key: IdKey<'_>) -> Result<(), SyncError> {
    let mismatch = |shown: String| Err(SyncError::IdMismatch { column: "id".into(), id: id.to_string(), key: shown });
    match key {
        IdKey::Absent | IdKey::Null => Ok(()),
        IdKey::Number(text) => match text.parse::<i64>() {
            Ok(n) if n == id => Ok(()),
            _ => mismatch(text.to_string()),
        },
        IdKey::String(text) => match text.parse::<i64>() {
            Ok(n) if n == id => Ok(()),
            _ => mismatch(format!("the string \"{text}\"")),
        },
        IdKey::Other(kind) => mismatch(format!("a JSON {kind}")),
    }
}

/// The payload must be a JSON object; `kind` is jsonb's name for its type.
pub fn check_payload_kind(kind: &str) -> Result<(), SyncError> {
    if kind == "object" {
        Ok(())
    } else {
        Err(SyncError::PayloadNotObject { got: kind.to_string() })
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;

    const S: i64 = MICROS_PER_SECOND;

    #[test]
    fn orderings_by_name() {
        assert_eq!(Ordering::parse("client_ts"), Some(Ordering::ClientTs));
        assert_eq!(Ordering::parse("server"), Some(Ordering::Server));
        assert_eq!(Ordering::parse("Server"), None);
        assert_eq!(Ordering::parse(SERVER_CLOCK), None);
    }

    proptest! {
        /// A write the server orders is stamped after the row, whatever the clock says, and at
        /// the clock when the row is older.
        #[test]
        fn a_server_stamp_is_after_the_row(now in 0..i64::MAX / 2, stored in 0..i64::MAX / 2) {
            let stamp = server_stamp(now, Some(stored));
            prop_assert!(stamp > stored && stamp >= now);
            prop_assert!(stored >= now || stamp == now);
            prop_assert_eq!(server_stamp(now, None), now);
        }
    }

    #[test]
    fn skew_boundaries() {
        let now = 1_000 * S;
        assert_eq!(check_clock_skew(now + 300 * S, now, 300), Skew::Accept, "exactly at the limit");
        assert_eq!(check_clock_skew(now + 300 * S + 1, now, 300), Skew::Reject { ahead_by_micros: 300 * S + 1 });
        assert_eq!(check_clock_skew(now + 1, now, 0), Skew::Reject { ahead_by_micros: 1 });
        assert_eq!(check_clock_skew(now, now, 0), Skew::Accept);
        assert_eq!(check_clock_skew(i64::MAX - 1, now, -1), Skew::Accept, "-1 turns it off");
        assert_eq!(check_clock_skew(i64::MAX - 1, i64::MAX - 2, i32::MAX), Skew::Accept);
        // The clock_skew fuzz target's finding: the difference saturates instead of overflowing.
        assert_eq!(check_clock_skew(i64::MAX, -1, 0), Skew::Reject { ahead_by_micros: i64::MAX });
    }

    proptest! {
        #[test]
        fn past_writes_are_never_rejected(now in -1_i64 << 50..1_i64 << 50,
                                           back in 0_i64..1_i64 << 40,
                                           skew in -1_i32..i32::MAX) {
            prop_assert_eq!(check_clock_skew(now - back, now, skew), Skew::Accept);
        }

        #[test]
        fn rejects_exactly_beyond_the_margin(now in -1_i64 << 50..1_i64 << 50,
                                             lead in 0_i64..1_i64 << 45,
                                             skew in 0_i32..i32::MAX) {
            let verdict = check_clock_skew(now + lead, now, skew);
            if lead > i64::from(skew) * S {
                prop_assert_eq!(verdict, Skew::Reject { ahead_by_micros: lead });
            } else {
                prop_assert_eq!(verdict, Skew::Accept);
            }
        }

        #[test]
        fn an_id_key_is_accepted_iff_it_names_the_same_row(id in any::<i64>(), other in any::<i64>()) {
            let same = id.to_string();
            let differs = other.to_string();
            prop_assert!(check_id_key(id, IdKey::Number(&same)).is_ok());
            prop_assert!(check_id_key(id, IdKey::String(&same)).is_ok());
            prop_assert_eq!(check_id_key(id, IdKey::Number(&differs)).is_ok(), id == other);
            prop_assert_eq!(check_id_key(id, IdKey::String(&differs)).is_ok(), id == other);
        }
    }

    #[test]
    fn id_key_forms() {
        assert!(check_id_key(7, IdKey::Absent).is_ok());
        assert!(check_id_key(7, IdKey::Null).is_ok());
        assert_eq!(
            check_id_key(7, IdKey::Number("7.5")),
            Err(SyncError::IdMismatch { column: "id".into(), id: "7".into(), key: "7.5".into() })
        );
        assert_eq!(
            check_id_key(7, IdKey::String("seven")),
            Err(SyncError::IdMismatch { column: "id".into(), id: "7".into(), key: "the string \"seven\"".into() })
        );
        assert_eq!(
            check_id_key(7, IdKey::Other("boolean")),
            Err(SyncError::IdMismatch { column: "id".into(), id: "7".into(), key: "a JSON boolean".into() })
        );
        // A number too large for bigint can never be the same row.
        assert!(check_id_key(i64::MAX, IdKey::Number("9223372036854775808")).is_err());
    }

    #[test]
    fn payload_kinds() {
        assert!(check_payload_kind("object").is_ok());
        for kind in ["array", "string", "number", "boolean", "null"] {
            assert_eq!(check_payload_kind(kind), Err(SyncError::PayloadNotObject { got: kind.into() }));
        }
    }
}
