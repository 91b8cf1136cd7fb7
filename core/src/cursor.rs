//! The pull cursor: an opaque, URL-safe text naming the feed position a device has pulled up to
//! (era, position, table id, row id) and the purge epoch it was handed out in. Nothing in it is
//! local to one cluster: positions and table ids survive a backup and restore.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::SyncError;

/// Where a pull continues: after this (position, table id, row id), in `era`. Positions order
/// the whole feed across eras (a later era starts above every position before it); the era is
/// there to tell a cursor from a history this database no longer has. Cursors of the first
/// release (before eras) have era 0: their positions are those the upgrade kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub era: i32,
    pub position: i64,
    pub table_id: i32,
    pub row_id: String,
}

impl Position {
    /// The feed order: (position, table id, row id); the default table's rows (table id 0) by
    /// their id's number, other tables' row ids bytewise, as collation "C".
    pub fn key(&self) -> (i64, i32, i64, &[u8]) {
        (self.position, self.table_id, self.default_id().unwrap_or(i64::MIN), self.row_id.as_bytes())
    }

    /// The default table's id this position names: None before the first row of its position
    /// (an empty row id) or for another table.
    pub fn default_id(&self) -> Option<i64> {
        if self.table_id == 0 {
            self.row_id.parse().ok()
        } else {
            None
        }
    }

    /// The cursor text: URL-safe base64 of `3:epoch:era:position:table_id:row_id`.
    pub fn encode_in_epoch(&self, epoch: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("3:{epoch}:{}:{}:{}:{}", self.era, self.position, self.table_id, self.row_id))
    }

    /// A cursor of any form, with its purge epoch when it has one. Forms 1 (`1:xid:oid:row`) and 2
    /// (`2:epoch:1:xid:oid:row`) come from the first release, whose positions were transaction
    /// ids and whose tables were OIDs: the update to this version keeps those positions, and such
    /// a cursor's table (an OID) is read as "after every table at that position", which may hand
    /// out again the few changes of that one position, never skip one.
    pub fn decode_with_epoch(cursor: &str) -> Result<(Position, Option<i64>), SyncError> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SyncError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| SyncError::BadCursor)?;
        let number = |s: &str| s.parse::<i64>().map_err(|_| SyncError::BadCursor);
        if let Some(rest) = text.strip_prefix("3:") {
            let mut parts = rest.splitn(5, ':');
            let (Some(epoch), Some(era), Some(position), Some(table_id), Some(row_id)) =
                (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(SyncError::BadCursor);
            };
            let era = era.parse::<i32>().map_err(|_| SyncError::BadCursor)?;
            let table_id = table_id.parse::<i32>().map_err(|_| SyncError::BadCursor)?;
            let position = number(position)?;
            if era < 0 || table_id < 0 || position < 0 {
                return Err(SyncError::BadCursor);
            }
            let p = Position { era, position, table_id, row_id: row_id.to_string() };
            // A default-table row is named by its bigint id (or not at all: before the first).
            if table_id == 0 && !row_id.is_empty() && p.default_id().is_none() {
                return Err(SyncError::BadCursor);
            }
            return Ok((p, Some(number(epoch)?)));
        }
        let (epoch, first) = match text.strip_prefix("2:").and_then(|rest| rest.split_once(':')) {
            Some((epoch, inner)) => (Some(number(epoch)?), inner),
            None => (None, text.as_str()),
        };
        let mut parts = first.splitn(4, ':');
        let (Some("1"), Some(xid), Some(oid), Some(_row)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SyncError::BadCursor);
        };
        let xid = xid.parse::<u64>().map_err(|_| SyncError::BadCursor)?;
        oid.parse::<u32>().map_err(|_| SyncError::BadCursor)?;
        let position = i64::try_from(xid).map_err(|_| SyncError::BadCursor)?;
        // After every table at that position: the row is of a table this version names otherwise.
        Ok((Position { era: 0, position, table_id: i32::MAX, row_id: String::new() }, epoch))
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip(era in 0..i32::MAX, position in 0..i64::MAX, table_id in 1..i32::MAX,
                              row_id in ".*", epoch in any::<i64>()) {
            let p = Position { era, position, table_id, row_id };
            let text = p.encode_in_epoch(epoch);
            prop_assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(Position::decode_with_epoch(&text).unwrap(), (p, Some(epoch)));
        }

        #[test]
        fn default_table_cursors_round_trip_and_order_by_id(position in 0..i64::MAX, a in any::<i64>(),
                                                             b in any::<i64>()) {
            let at = |id: i64| Position { era: 1, position, table_id: 0, row_id: id.to_string() };
            let text = at(a).encode_in_epoch(0);
            prop_assert_eq!(Position::decode_with_epoch(&text).unwrap(), (at(a), Some(0)));
            prop_assert_eq!(at(a).default_id(), Some(a));
            prop_assert_eq!(at(a).key().cmp(&at(b).key()), a.cmp(&b));
        }
    }

    #[test]
    fn the_default_table_comes_first_at_each_position_in_id_order() {
        let at = |table_id, row_id: &str| Position { era: 1, position: 7, table_id, row_id: row_id.into() };
        let start = Position { era: 1, position: 7, table_id: 0, row_id: String::new() };
        let order = [start, at(0, "-3"), at(0, "2"), at(0, "10"), at(1, "10"), at(1, "2")];
        for pair in order.windows(2) {
            assert!(pair[0].key() < pair[1].key(), "{:?} before {:?}", pair[0], pair[1]);
        }
        assert_eq!(at(1, "2").default_id(), None);
    }

    #[test]
    fn first_release_cursors_continue_after_their_position() {
        let old = URL_SAFE_NO_PAD.encode("1:7421:16390:42");
        let (p, epoch) = Position::decode_with_epoch(&old).unwrap();
        assert_eq!((p.era, p.position, p.table_id, p.row_id.as_str(), epoch), (0, 7421, i32::MAX, "", None));
        let with_epoch = URL_SAFE_NO_PAD.encode("2:99:1:7421:16390:42");
        assert_eq!(Position::decode_with_epoch(&with_epoch).unwrap(), (p, Some(99)));
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for bad in [
            "",
            "!!!",
            "MTpmb28",
            &URL_SAFE_NO_PAD.encode("2:1:2:x"),
            &URL_SAFE_NO_PAD.encode("1:x:2:y"),
            &URL_SAFE_NO_PAD.encode("3:0:1:-5:0:x"),
            &URL_SAFE_NO_PAD.encode("3:0:1:5:0"),
            &URL_SAFE_NO_PAD.encode("3:0:1:5:0:x"),
            &URL_SAFE_NO_PAD.encode("3:0:1:5:0:1.5"),
            &URL_SAFE_NO_PAD.encode("1:18446744073709551615:1:x"),
        ] {
            assert_eq!(Position::decode_with_epoch(bad), Err(SyncError::BadCursor), "{bad}");
        }
    }
}
