//! The pull cursor (`Cursor`, core/src/cursor.rs), every form (the first release's `1:xid:oid:row`
//! and `2:epoch:1:…`, `3:epoch:era:position:table_id:row` that pulls on one server hand out, and
//! `4:epoch:floor:[…]`, a position per era): decoding any text never panics and fails only with
//! `BadCursor` (also for a default-table row id that is not a bigint); a decoded cursor
//! re-encodes to one that decodes the same; every position (and epoch) survives encode/decode;
//! cursors are URL-safe.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::cursor::{era_of, Cursor, Position};
use inventory_sync_fuzz::error::SyncError;
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Case {
    /// Any text, as sync_pull gets it from a client.
    text: String,
    cursor: Cursor,
    epoch: i64,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.arbitrary_len::<u8>()?;
        let text = String::from_utf8_lossy(u.bytes(len)?).into_owned();
        // A floor, then one part per era at or above it, in era order, each past its era's start.
        let floor = u.int_in_range(0..=32_767)?;
        let mut parts: Vec<Position> = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let era = parts.last().map_or(i64::from(floor), |p| i64::from(p.era) + 1);
            let offset = u.int_in_range(1..=(1i64 << 48) - 1)?;
            // Past the last era a bigint holds: no more parts.
            let Some(position) = era.checked_mul(1 << 48).and_then(|start| start.checked_add(offset)) else { break };
            let table_id = u.int_in_range(0..=i32::MAX)?;
            // The default table's (0) row ids are its bigint ids, or empty (before its first row).
            let row_id = match table_id {
                0 if u.arbitrary()? => String::new(),
                0 => u.arbitrary::<i64>()?.to_string(),
                _ => u.arbitrary()?,
            };
            parts.push(Position { era: era_of(position), position, table_id, row_id });
        }
        let cursor = Cursor { floor, parts };
        Ok(Case { text, cursor, epoch: u.arbitrary()? })
    }
}

fn round_trip(c: &Cursor, epoch: i64) {
    let text = c.encode_in_epoch(epoch);
    assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{text:?}");
    assert_eq!(Cursor::decode_with_epoch(&text), Ok((c.clone(), Some(epoch))), "round trip");
}

fuzz_target!(|c: Case| {
    match Cursor::decode_with_epoch(&c.text) {
        Ok((cursor, epoch)) => round_trip(&cursor, epoch.unwrap_or(0)),
        Err(e) => assert_eq!(e, SyncError::BadCursor),
    }
    round_trip(&c.cursor, c.epoch);
});
