//! Row versions: what the server stamps a row with at each applied write, and what a write's
//! `base_version` names.
//!
//! A version is a hybrid logical clock kept per row: the server's clock in microseconds since
//! 2000-01-01, or one more than the row's previous version if that is not below it. So a row's
//! versions strictly grow, whatever the server's clock does (stepped back, or another node's
//! clock behind), and across rows they follow the server's clock. Clients see a version as
//! opaque text that sorts as the versions do: 16 lowercase hex digits. The next version is
//! computed by the writing statements themselves (`sql::NEXT_VERSION` and its kin), so that it is
//! atomic with the write.

use crate::error::SyncError;

/// What a write's `base_version` says the row is at: the write applies only if it still is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// `''`: the row does not exist (no row, no tombstone): a create that must not overwrite.
    Absent,
    /// The row (or its tombstone) is at this version.
    At(i64),
}

/// Where a row stands, as a write with a `base_version` compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Current {
    /// No row and no tombstone.
    Absent,
    /// A row that no sync function wrote (a tracked table's row written by plain SQL): it has no
    /// version, and only a write without `base_version` replaces it.
    Unversioned,
    /// The row or its tombstone, at this version.
    At(i64),
}

impl Expected {
    /// Read a `base_version` as a client sends it back: a version an answer or a pull gave, or
    /// `''` for a row the client believes does not exist.
    pub fn parse(text: &str) -> Result<Expected, SyncError> {
        if text.is_empty() {
            return Ok(Expected::Absent);
        }
        let well_formed = text.len() == 16 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match i64::from_str_radix(text, 16) {
            Ok(v) if well_formed => Ok(Expected::At(v)),
            _ => Err(SyncError::BadVersion { given: text.chars().take(40).collect() }),
        }
    }

    /// Whether a row standing at `current` is where the write expects it.
    pub fn matches(self, current: Current) -> bool {
        match (self, current) {
            (Expected::Absent, Current::Absent) => true,
            (Expected::At(v), Current::At(c)) => v == c,
            _ => false,
        }
    }

    /// The value a statement compares the stored version with: -1 (no version is negative) when
    /// the row must not exist.
    pub fn param(self) -> i64 {
        match self {
            Expected::Absent => -1,
            Expected::At(v) => v,
        }
    }
}

/// A version as clients see it.
pub fn text(version: i64) -> String {
    format!("{version:016x}")
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base_versions_read_as_sent() {
        assert_eq!(Expected::parse(""), Ok(Expected::Absent));
        assert_eq!(Expected::parse("0000000000000000"), Ok(Expected::At(0)));
        assert_eq!(Expected::parse("0002d1a3b4c5d6e7"), Ok(Expected::At(0x0002_d1a3_b4c5_d6e7)));
        for bad in ["1", "0002D1A3B4C5D6E7", "+002d1a3b4c5d6e7", "ffffffffffffffff", " 002d1a3b4c5d6e7", "zz"] {
            assert!(matches!(Expected::parse(bad), Err(SyncError::BadVersion { .. })), "{bad}");
        }
    }

    #[test]
    fn only_the_expected_state_matches() {
        assert!(Expected::Absent.matches(Current::Absent));
        assert!(!Expected::Absent.matches(Current::Unversioned));
        assert!(!Expected::Absent.matches(Current::At(5)));
        assert!(Expected::At(5).matches(Current::At(5)));
        assert!(!Expected::At(5).matches(Current::At(6)));
        assert!(!Expected::At(5).matches(Current::Absent));
        assert!(!Expected::At(0).matches(Current::Unversioned));
    }

    proptest! {
        /// Text sorts as the versions do, and reads back.
        #[test]
        fn text_sorts_and_reads_back(a in 0..i64::MAX, b in 0..i64::MAX) {
            prop_assert_eq!(text(a).cmp(&text(b)), a.cmp(&b));
            prop_assert_eq!(Expected::parse(&text(a)), Ok(Expected::At(a)));
        }
    }
}
