//! The pull cursor: an opaque, URL-safe text naming where a device has pulled up to, one feed
//! position (position, table id, row id) per era it has changes of, and the purge epoch it was
//! handed out in. Nothing in it is local to one cluster: positions and table ids survive a backup
//! and restore.
//!
//! One server writes in one era at a time, and each era's positions lie above every position of
//! the eras before it, so one position says how far a device got. On a Citus cluster every node
//! writes in an era of its own at once (docs/DEVELOPMENT.md, "Citus"), each up to its own horizon:
//! a device may be further in one node's era than in another's, so the cursor keeps a position for
//! each. [`Cursor`] plans a pull's walk over the eras ([`Cursor::ranges`]) and moves on from what
//! the walk found ([`Cursor::advance`]).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::SyncError;

/// Positions of era `e` are `e * ERA_SPAN + xid`: room for 2^48 transactions per era (89 years at
/// 100,000 transactions a second), and for 32,767 eras in a bigint.
pub const ERA_SPAN: i64 = 1 << 48;

/// The first position of era `era`.
pub fn era_start(era: i32) -> i64 {
    i64::from(era) * ERA_SPAN
}

/// The era a position belongs to.
pub fn era_of(position: i64) -> i32 {
    (position / ERA_SPAN) as i32
}

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

    /// The start of era `era`: before its first change.
    pub fn era_start(era: i32) -> Position {
        Position { era, position: era_start(era), table_id: 0, row_id: String::new() }
    }

    fn is_era_start(&self) -> bool {
        self.position == era_start(self.era) && self.table_id == 0 && self.row_id.is_empty()
    }

    /// A position of a change; None if it is not one a pull hands out (negative numbers, a
    /// default-table row id that is not a bigint).
    fn checked(position: i64, table_id: i32, row_id: String) -> Option<Position> {
        if position < 0 || table_id < 0 {
            return None;
        }
        let p = Position { era: era_of(position), position, table_id, row_id };
        // A default-table row is named by its bigint id (or not at all: before the first).
        if table_id == 0 && !p.row_id.is_empty() && p.default_id().is_none() {
            return None;
        }
        Some(p)
    }

    /// A cursor of forms 1 to 3, with its purge epoch when it has one (see [`Cursor::decode`]).
    /// Forms 1 (`1:xid:oid:row`) and 2 (`2:epoch:1:xid:oid:row`) come from the first release,
    /// whose positions were transaction ids and whose tables were OIDs: the update to this version
    /// keeps those positions, and such a cursor's table (an OID) is read as "after every table at
    /// that position", which may hand out again the few changes of that one position, never skip
    /// one. Form 3 (`3:epoch:era:position:table_id:row_id`) names one position; its era is the
    /// latest era when it was handed out, at or after the position's own.
    fn decode_single(text: &str) -> Result<(Position, Option<i64>), SyncError> {
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
            let p = Position::checked(number(position)?, table_id, row_id.to_string()).ok_or(SyncError::BadCursor)?;
            if era < 0 || p.era > era {
                return Err(SyncError::BadCursor);
            }
            return Ok((p, Some(number(epoch)?)));
        }
        let (epoch, first) = match text.strip_prefix("2:").and_then(|rest| rest.split_once(':')) {
            Some((epoch, inner)) => (Some(number(epoch)?), inner),
            None => (None, text),
        };
        let mut parts = first.splitn(4, ':');
        let (Some("1"), Some(xid), Some(oid), Some(_row)) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SyncError::BadCursor);
        };
        let xid = xid.parse::<u64>().map_err(|_| SyncError::BadCursor)?;
        oid.parse::<u32>().map_err(|_| SyncError::BadCursor)?;
        let position = i64::try_from(xid).ok().filter(|x| *x < ERA_SPAN).ok_or(SyncError::BadCursor)?;
        // After every table at that position: the row is of a table this version names otherwise.
        Ok((Position { era: 0, position, table_id: i32::MAX, row_id: String::new() }, epoch))
    }
}

/// An era of the database, as a pull finds it: its number and the position below which its
/// changes may be handed out (the horizon of the node that writes in it; the era's end when no
/// node writes in it any more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Era {
    pub era: i32,
    pub below: i64,
}

impl Era {
    /// An era no node writes in any more: everything in it is committed, to its end.
    pub fn finished(era: i32) -> Era {
        Era { era, below: era_start(era.saturating_add(1)) }
    }

    pub fn is_finished(&self) -> bool {
        self.below >= era_start(self.era.saturating_add(1))
    }
}

/// One range of the feed a pull walks: after `after`, below `below`, in feed order. It spans eras
/// `eras.0` to `eras.1`: finished eras and the era after them run together into one range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub after: Position,
    pub below: i64,
    pub eras: (i32, i32),
}

/// Where a pull continues: every era below `floor` has been walked to its end; in each era at or
/// above it, after its part (its position in `parts`, one per era, in era order), or from its
/// start if it has none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cursor {
    pub floor: i32,
    pub parts: Vec<Position>,
}

impl Range {
    /// Whether the range runs through era `era`.
    pub fn spans(&self, era: i32) -> bool {
        (self.eras.0..=self.eras.1).contains(&era)
    }
}

impl Cursor {
    /// Where a device that never pulled starts: before everything.
    pub fn start() -> Cursor {
        Cursor::default()
    }

    /// Where the walk stands in `era`.
    pub fn part(&self, era: i32) -> Option<&Position> {
        self.parts.iter().find(|p| p.era == era)
    }

    /// Whether the walk has passed `p` (a change's position).
    pub fn passed(&self, p: &Position) -> bool {
        let era = era_of(p.position);
        era < self.floor || self.part(era).is_some_and(|part| part.key() >= p.key())
    }

    /// The ranges a pull walks, in feed order, given the database's eras (in era order; every era
    /// with changes is among them). Each era at or above the floor is walked after its part, up
    /// to its `below`; a finished era and the eras after it that the walk starts from their
    /// beginning are one range, as on one server, where a pull is always one range.
    pub fn ranges(&self, eras: &[Era]) -> Vec<Range> {
        let mut ranges: Vec<Range> = Vec::new();
        for era in eras.iter().filter(|e| e.era >= self.floor) {
            let part = self.part(era.era);
            if let (Some(last), None) = (ranges.last_mut(), part) {
                if last.below >= era_start(last.eras.1.saturating_add(1)) {
                    last.below = era.below;
                    last.eras.1 = era.era;
                    continue;
                }
            }
            let after = part.cloned().unwrap_or_else(|| Position::era_start(era.era));
            ranges.push(Range { after, below: era.below, eras: (era.era, era.era) });
        }
        ranges
    }

    /// The cursor after a pull walked `ranges` (from [`Cursor::ranges`] over `eras`): `taken`, the
    /// positions of the changes it handed out, in order; `ended`, how many of the ranges it walked
    /// to their end (the rest it did not reach, or stopped inside the last one taken from).
    pub fn advance(&self, eras: &[Era], ranges: &[Range], taken: &[Position], ended: usize) -> Cursor {
        let mut parts: Vec<Position> = Vec::new();
        let mut floor = None;
        for era in eras.iter().filter(|e| e.era >= self.floor) {
            let part = taken.iter().rev().find(|p| p.era == era.era).or(self.part(era.era)).cloned();
            // Walked to its end: in a range walked to its end, or in the range the walk stopped
            // in, before the era of a change taken from it (the walk is in feed order).
            let walked_to_end = ranges.iter().enumerate().any(|(i, r)| {
                r.spans(era.era) && (i < ended || taken.iter().any(|p| p.era > era.era && p.era <= r.eras.1))
            });
            if floor.is_none() {
                if era.is_finished() && walked_to_end {
                    continue;
                }
                floor = Some(era.era);
            }
            parts.extend(part);
        }
        let floor =
            floor.unwrap_or_else(|| eras.last().map_or(self.floor, |e| e.era.saturating_add(1)).max(self.floor));
        Cursor { floor, parts }
    }

    /// The cursor text: one position in the era it walks (form 3, as every cursor on one server),
    /// or a position per era (form 4, `4:epoch:floor:` then a JSON array of
    /// `[position, table_id, row_id]`), URL-safe base64.
    pub fn encode_in_epoch(&self, epoch: i64) -> String {
        let text = match self.parts.as_slice() {
            [] => format!("3:{epoch}:{}:{}:0:", self.floor, era_start(self.floor)),
            [p] if p.era == self.floor => {
                format!("3:{epoch}:{}:{}:{}:{}", self.floor, p.position, p.table_id, p.row_id)
            }
            parts => {
                let list: Vec<(i64, i32, &str)> =
                    parts.iter().map(|p| (p.position, p.table_id, p.row_id.as_str())).collect();
                format!("4:{epoch}:{}:{}", self.floor, serde_json::to_string(&list).expect("a cursor serializes"))
            }
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// A cursor of any form, with its purge epoch when it has one (forms 1 and 2, from the first
    /// release, have none). A form 3 cursor walks from its position's era on.
    pub fn decode_with_epoch(cursor: &str) -> Result<(Cursor, Option<i64>), SyncError> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| SyncError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| SyncError::BadCursor)?;
        if let Some(rest) = text.strip_prefix("4:") {
            let mut fields = rest.splitn(3, ':');
            let (Some(epoch), Some(floor), Some(list)) = (fields.next(), fields.next(), fields.next()) else {
                return Err(SyncError::BadCursor);
            };
            let epoch = epoch.parse::<i64>().map_err(|_| SyncError::BadCursor)?;
            let floor = floor.parse::<i32>().map_err(|_| SyncError::BadCursor)?;
            let list: Vec<(i64, i32, String)> = serde_json::from_str(list).map_err(|_| SyncError::BadCursor)?;
            let mut parts = Vec::with_capacity(list.len());
            for (position, table_id, row_id) in list {
                let p = Position::checked(position, table_id, row_id).ok_or(SyncError::BadCursor)?;
                // One part per era, in era order, none below the floor, none that says nothing.
                if p.era < floor || parts.last().is_some_and(|last: &Position| last.era >= p.era) || p.is_era_start() {
                    return Err(SyncError::BadCursor);
                }
                parts.push(p);
            }
            if floor < 0 {
                return Err(SyncError::BadCursor);
            }
            return Ok((Cursor { floor, parts }, Some(epoch)));
        }
        let (p, epoch) = Position::decode_single(&text)?;
        let floor = p.era;
        let parts = if p.is_era_start() { vec![] } else { vec![p] };
        Ok((Cursor { floor, parts }, epoch))
    }
}

#[cfg(test)]
mod unit {
    use super::*;
    use proptest::prelude::*;

    fn decode(text: &str) -> Result<(Cursor, Option<i64>), SyncError> {
        Cursor::decode_with_epoch(text)
    }

    fn one(p: &Position) -> Cursor {
        Cursor { floor: p.era, parts: vec![p.clone()] }
    }

    /// Any cursor a pull may hand out: a floor, and parts in eras at or above it.
    fn cursors() -> impl Strategy<Value = Cursor> {
        (0..40i32, proptest::collection::btree_map(0..40i32, (0..ERA_SPAN, 0..i32::MAX, ".*"), 0..4)).prop_map(
            |(floor, parts)| Cursor {
                floor,
                parts: parts
                    .into_iter()
                    .map(|(era, (offset, table_id, row_id))| {
                        let era = era + floor;
                        let table_id = table_id.max(1);
                        Position { era, position: era_start(era) + offset.max(1), table_id, row_id }
                    })
                    .collect(),
            },
        )
    }

    proptest! {
        #[test]
        fn cursors_round_trip(cursor in cursors(), epoch in any::<i64>()) {
            let text = cursor.encode_in_epoch(epoch);
            prop_assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
            prop_assert_eq!(decode(&text).unwrap(), (cursor, Some(epoch)));
        }

        #[test]
        fn default_table_cursors_round_trip_and_order_by_id(position in ERA_SPAN..i64::MAX, a in any::<i64>(),
                                                             b in any::<i64>()) {
            let at = |id: i64| Position { era: era_of(position), position, table_id: 0, row_id: id.to_string() };
            let text = one(&at(a)).encode_in_epoch(0);
            prop_assert_eq!(decode(&text).unwrap(), (one(&at(a)), Some(0)));
            prop_assert_eq!(at(a).default_id(), Some(a));
            prop_assert_eq!(at(a).key().cmp(&at(b).key()), a.cmp(&b));
        }

        /// Several nodes write at once, each in its era, with transactions that commit in any
        /// order; devices pull in pages of any size, each node's era up to that node's horizon
        /// (its oldest running transaction), as `feed` walks the ranges. Whatever the order,
        /// every committed change is handed out, in feed order within each era.
        #[test]
        fn pulls_across_eras_never_skip_a_change(
            steps in proptest::collection::vec((0..3usize, 0..3u8, 1..4usize), 1..80),
        ) {
            // Era 1 (finished: history from before), then eras 2 to 4, one per node.
            let mut next_xid = [100i64; 3];
            let mut open: Vec<(usize, i64)> = Vec::new();
            let mut committed: Vec<i64> = (1..5).map(|x| era_start(1) + x * 10).collect();
            let mut cursor = Cursor::start();
            let mut seen: Vec<i64> = Vec::new();
            let pull = |cursor: &Cursor, committed: &[i64], open: &[(usize, i64)], next: &[i64; 3], lim: usize| {
                let mut eras = vec![Era::finished(0), Era::finished(1)];
                for (node, &next) in next.iter().enumerate() {
                    let era = 2 + node as i32;
                    let horizon = open.iter().filter(|o| o.0 == node).map(|o| o.1).min().unwrap_or(next);
                    eras.push(Era { era, below: era_start(era) + horizon });
                }
                let ranges = cursor.ranges(&eras);
                let mut taken: Vec<Position> = Vec::new();
                let mut ended = 0;
                for range in &ranges {
                    let mut rows: Vec<i64> = committed
                        .iter()
                        .copied()
                        .filter(|&p| p > range.after.position && p < range.below)
                        .collect();
                    rows.sort();
                    let room = lim - taken.len();
                    if rows.len() > room {
                        taken.extend(rows[..room].iter().map(|&p| Position { era: era_of(p), position: p, table_id: 1, row_id: "r".into() }));
                        break;
                    }
                    taken.extend(rows.iter().map(|&p| Position { era: era_of(p), position: p, table_id: 1, row_id: "r".into() }));
                    ended += 1;
                }
                let next_cursor = cursor.advance(&eras, &ranges, &taken, ended);
                (next_cursor, taken.into_iter().map(|p| p.position).collect::<Vec<_>>())
            };
            for (node, action, lim) in steps {
                match action {
                    0 => {
                        open.push((node, next_xid[node]));
                        next_xid[node] += 1;
                    }
                    1 => {
                        if let Some(i) = open.iter().position(|o| o.0 == node) {
                            let (node, xid) = open.remove(i);
                            committed.push(era_start(2 + node as i32) + xid);
                        }
                    }
                    _ => {
                        let (next, got) = pull(&cursor, &committed, &open, &next_xid, lim);
                        // What the cursor says survives its text.
                        prop_assert_eq!(decode(&next.encode_in_epoch(0)).unwrap().0, next.clone());
                        cursor = next;
                        seen.extend(got);
                    }
                }
            }
            for (node, xid) in open.drain(..) {
                committed.push(era_start(2 + node as i32) + xid);
            }
            for _ in 0..200 {
                let (next, got) = pull(&cursor, &committed, &open, &next_xid, 3);
                cursor = next;
                if got.is_empty() {
                    break;
                }
                seen.extend(got);
            }
            for p in &committed {
                prop_assert!(seen.contains(p), "change {p} (era {}) was skipped", era_of(*p));
            }
            prop_assert_eq!(seen.len(), committed.len(), "a change was handed out twice");
        }
    }

    #[test]
    fn on_one_server_a_pull_is_one_range_and_its_cursor_one_position() {
        let eras = [Era::finished(0), Era::finished(1), Era { era: 2, below: era_start(2) + 500 }];
        let ranges = Cursor::start().ranges(&eras);
        assert_eq!(ranges, vec![Range { after: Position::era_start(0), below: era_start(2) + 500, eras: (0, 2) }]);
        // Stopped inside era 1: eras before it are done, the floor is era 1.
        let p = Position { era: 1, position: era_start(1) + 7, table_id: 3, row_id: "a".into() };
        let cursor = Cursor::start().advance(&eras, &ranges, std::slice::from_ref(&p), 0);
        assert_eq!(cursor, one(&p));
        assert!(URL_SAFE_NO_PAD.decode(cursor.encode_in_epoch(5)).unwrap().starts_with(b"3:5:1:"));
        // From there on: one range, from the position.
        assert_eq!(cursor.ranges(&eras), vec![Range { after: p, below: era_start(2) + 500, eras: (1, 2) }]);
        // Walked to the end with nothing in era 2: the floor is era 2, from its start.
        let done = cursor.advance(&eras, &cursor.ranges(&eras), &[], 1);
        assert_eq!(done, Cursor { floor: 2, parts: vec![] });
        assert_eq!(decode(&done.encode_in_epoch(0)).unwrap().0, done);
    }

    #[test]
    fn eras_written_at_once_each_keep_their_position() {
        let eras =
            [Era::finished(1), Era { era: 2, below: era_start(2) + 50 }, Era { era: 3, below: era_start(3) + 90 }];
        let at = |era: i32, x: i64| Position { era, position: era_start(era) + x, table_id: 1, row_id: "k".into() };
        let ranges = Cursor::start().ranges(&eras);
        assert_eq!(ranges.len(), 2, "era 3 is not merged into era 2, which is still written");
        let cursor = Cursor::start().advance(&eras, &ranges, &[at(2, 40), at(3, 60)], 2);
        assert_eq!(cursor, Cursor { floor: 2, parts: vec![at(2, 40), at(3, 60)] });
        assert!(URL_SAFE_NO_PAD.decode(cursor.encode_in_epoch(0)).unwrap().starts_with(b"4:0:2:"));
        // A change that commits late in era 2 (below 40 is impossible: its horizon was 50) lies
        // after the part of era 2 and is found by the next pull.
        let ranges = cursor.ranges(&eras);
        assert_eq!(ranges[0].after, at(2, 40));
        assert_eq!(ranges[1].after, at(3, 60));
        assert!(cursor.passed(&at(3, 60)) && !cursor.passed(&at(2, 41)) && cursor.passed(&at(1, 99)));
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
        let (cursor, epoch) = decode(&old).unwrap();
        let p = Position { era: 0, position: 7421, table_id: i32::MAX, row_id: String::new() };
        assert_eq!((&cursor, epoch), (&one(&p), None));
        let with_epoch = URL_SAFE_NO_PAD.encode("2:99:1:7421:16390:42");
        assert_eq!(decode(&with_epoch).unwrap(), (cursor, Some(99)));
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
            // A position in a later era than the cursor's.
            &URL_SAFE_NO_PAD.encode(format!("3:0:1:{}:0:", era_start(2))),
            &URL_SAFE_NO_PAD.encode("1:18446744073709551615:1:x"),
            &URL_SAFE_NO_PAD.encode("4:0:1:"),
            &URL_SAFE_NO_PAD.encode("4:0:1:[[5,1,\"a\"]]"),
            // Eras out of order, twice, or a part that names only an era's start.
            &URL_SAFE_NO_PAD.encode(format!("4:0:1:[[{},1,\"a\"],[{},1,\"a\"]]", era_start(2) + 1, era_start(1) + 1)),
            &URL_SAFE_NO_PAD.encode(format!("4:0:1:[[{},1,\"a\"],[{},1,\"b\"]]", era_start(1) + 1, era_start(1) + 2)),
            &URL_SAFE_NO_PAD.encode(format!("4:0:1:[[{},0,\"\"]]", era_start(2))),
            &URL_SAFE_NO_PAD.encode("4:0:-1:[]"),
        ] {
            assert_eq!(decode(bad), Err(SyncError::BadCursor), "{bad}");
        }
    }
}
