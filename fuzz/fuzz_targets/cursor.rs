//! The pull cursor (`Position`, core/src/cursor.rs), every form (the first release's `1:xid:oid:row`
//! and `2:epoch:1:…`, and `3:epoch:era:position:table_id:row` that pulls hand out): decoding any
//! text never panics and fails only with `BadCursor` (also for a default-table row id that is not
//! a bigint); a decoded cursor re-encodes to one that decodes the same; every position (and
//! epoch) survives encode/decode; cursors are URL-safe.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::cursor::Position;
use inventory_sync_fuzz::error::SyncError;
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Case {
    /// Any text, as sync_pull gets it from a client.
    text: String,
    position: Position,
    epoch: i64,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = u.arbitrary_len::<u8>()?;
        let text = String::from_utf8_lossy(u.bytes(len)?).into_owned();
        let table_id = u.int_in_range(0..=i32::MAX)?;
        // The default table's (0) row ids are its bigint ids, or empty (before its first row).
        let row_id = match table_id {
            0 if u.arbitrary()? => String::new(),
            0 => u.arbitrary::<i64>()?.to_string(),
            _ => u.arbitrary()?,
        };
        let position = Position {
            era: u.int_in_range(0..=i32::MAX)?,
            position: u.int_in_range(0..=i64::MAX)?,
            table_id,
            row_id,
        };
        Ok(Case { text, position, epoch: u.arbitrary()? })
    }
}

fn round_trip(p: &Position, epoch: i64) {
    let text = p.encode_in_epoch(epoch);
    assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{text:?}");
    assert_eq!(Position::decode_with_epoch(&text), Ok((p.clone(), Some(epoch))), "round trip");
}

fuzz_target!(|c: Case| {
    match Position::decode_with_epoch(&c.text) {
        Ok((p, epoch)) => round_trip(&p, epoch.unwrap_or(0)),
        Err(e) => assert_eq!(e, SyncError::BadCursor),
    }
    round_trip(&c.position, c.epoch);
});
