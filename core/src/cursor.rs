//! The pull cursor: an opaque, URL-safe text naming the feed position (transaction id, table
//! OID, row id) a device has pulled up to, and the purge epoch it was handed out in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::SyncError;

/// Where a pull continues: after this (transaction id, table OID, row id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub xid: u64,
    pub tbl: u32,
    pub row_id: String,
}

impl Position {
    /// The opaque cursor text of the first form, without a purge epoch: URL-safe base64 of
    /// `1:xid:tbl:row_id`. Pulls hand out `encode_in_epoch`; this form is still accepted.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("1:{}:{}:{}", self.xid, self.tbl, self.row_id))
    }

    pub fn decode(cursor: &str) -> Result<Position, SyncError> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SyncError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| SyncError::BadCursor)?;
        let mut parts = text.splitn(4, ':');
        let (Some("1"), Some(xid), Some(tbl), Some(row_id)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SyncError::BadCursor);
        };
        Ok(Position {
            xid: xid.parse().map_err(|_| SyncError::BadCursor)?,
            tbl: tbl.parse().map_err(|_| SyncError::BadCursor)?,
            row_id: row_id.to_string(),
        })
    }

    /// The cursor text with the purge epoch it was handed out in: `2:epoch:` followed by the
    /// text of `encode` (URL-safe base64 of the whole).
    pub fn encode_in_epoch(&self, epoch: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("2:{epoch}:1:{}:{}:{}", self.xid, self.tbl, self.row_id))
    }

    /// A cursor of either form, with its purge epoch when it has one.
    pub fn decode_with_epoch(cursor: &str) -> Result<(Position, Option<i64>), SyncError> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SyncError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| SyncError::BadCursor)?;
        match text.strip_prefix("2:").and_then(|rest| rest.split_once(':')) {
            Some((epoch, inner)) => {
                let epoch = epoch.parse().map_err(|_| SyncError::BadCursor)?;
                Ok((Position::decode(&URL_SAFE_NO_PAD.encode(inner))?, Some(epoch)))
            }
            None => Ok((Position::decode(cursor)?, None)),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip(xid in any::<u64>(), tbl in any::<u32>(), row_id in ".*") {
            let p = Position { xid, tbl, row_id };
            let text = p.encode();
            prop_assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(Position::decode(&text).unwrap(), p);
        }
    }

    proptest! {
        #[test]
        fn cursors_keep_their_epoch(xid in any::<u64>(), tbl in any::<u32>(), row_id in ".*", epoch in any::<i64>()) {
            let p = Position { xid, tbl, row_id };
            prop_assert_eq!(Position::decode_with_epoch(&p.encode_in_epoch(epoch)).unwrap(), (p.clone(), Some(epoch)));
            prop_assert_eq!(Position::decode_with_epoch(&p.encode()).unwrap(), (p, None));
        }
    }

    #[test]
    fn garbage_is_not_a_cursor() {
        for bad in ["", "!!!", "MTpmb28", &URL_SAFE_NO_PAD.encode("2:1:2:x"), &URL_SAFE_NO_PAD.encode("1:x:2:y")] {
            assert_eq!(Position::decode(bad), Err(SyncError::BadCursor), "{bad}");
        }
    }
}
