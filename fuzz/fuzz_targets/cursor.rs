//! The pull cursor (`Position`, core/src/cursor.rs), both forms (`1:xid:tbl:row_id`, and the one pulls
//! hand out with the purge epoch, `2:epoch:1:…`): decoding any text never panics and fails only
//! with `BadCursor`; a decoded cursor re-encodes to one that decodes the same; every position
//! (and epoch) survives encode/decode; cursors are URL-safe.
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
        let position = Position { xid: u.arbitrary()?, tbl: u.arbitrary()?, row_id: u.arbitrary()? };
        Ok(Case { text, position, epoch: u.arbitrary()? })
    }
}

fn url_safe(text: &str) {
    assert!(text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'), "{text:?}");
}

fn round_trip(p: &Position, epoch: Option<i64>) {
    let first = p.encode();
    url_safe(&first);
    assert_eq!(Position::decode(&first).as_ref(), Ok(p), "decode(encode(p)) != p");
    assert_eq!(Position::decode_with_epoch(&first), Ok((p.clone(), None)), "the first form has no epoch");
    if let Some(e) = epoch {
        let second = p.encode_in_epoch(e);
        url_safe(&second);
        assert_eq!(Position::decode_with_epoch(&second), Ok((p.clone(), Some(e))), "epoch form round trip");
        assert_eq!(Position::decode(&second), Err(SyncError::BadCursor), "the epoch form is not the first form");
    }
}

fuzz_target!(|c: Case| {
    match Position::decode(&c.text) {
        Ok(p) => round_trip(&p, None),
        Err(e) => assert_eq!(e, SyncError::BadCursor),
    }
    match Position::decode_with_epoch(&c.text) {
        Ok((p, epoch)) => round_trip(&p, epoch),
        Err(e) => assert_eq!(e, SyncError::BadCursor),
    }
    round_trip(&c.position, Some(c.epoch));
});
