//! `sync_pull`: the changes after a cursor, for devices to download.
//!
//! Every change carries the 64-bit id of the transaction that made it (`xid8`). Transaction ids
//! are handed out in start order but commits happen in any order, so neither they nor timestamps
//! nor sequence numbers are safe cursors on their own: a transaction still open when a pull ran
//! can commit later with a smaller id than changes already pulled. So a pull only hands out
//! changes below the horizon of its snapshot, `xmin`, the oldest transaction still running:
//! everything below it has committed or aborted, and every transaction that commits later has an
//! id at or above it. The cursor is the position (transaction id, table, row) of the last change
//! handed out; the next pull continues after it. A change is therefore never skipped; a long
//! open write transaction only delays the changes after it until it ends.
//!
//! A row appears once per change with its state at pull time (its latest committed version);
//! a row changed again later appears again. Pull only reads, so it runs on hot standbys too.

use std::collections::HashMap;

use std::collections::BTreeMap;

use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;
use serde_json::value::RawValue;

use crate::catalog;
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::{Kept, Row};
use crate::pg::param::{oid, xid8};
use crate::pg::{lookup, xact};
use inventory_sync_core::cursor::Position;
use inventory_sync_core::sql;
use inventory_sync_core::SyncError;

pub const MAX_LIMIT: i32 = 100_000;

fn feed_types() -> Vec<PgOid> {
    [pg_sys::XID8OID, pg_sys::OIDOID, pg_sys::TEXTOID, pg_sys::OIDOID, pg_sys::INT4OID]
        .map(PgOid::from_untagged)
        .to_vec()
}

thread_local! {
    static FEED_WITH_DEFAULT: Kept = Kept::new(sql::feed(true), feed_types());
    static FEED_TRACKED_ONLY: Kept = Kept::new(sql::feed(false), feed_types());
}

/// One change from the feed's first pass: where it is, and its entry (complete, or missing the
/// row's data when it comes from a tracked table). Entries stay JSON text, never parsed as a
/// whole: a stored row may be nested deeper than a JSON parser in Rust would go.
struct Found {
    position: Position,
    entry: Box<RawValue>,
    needs_row: bool,
}

/// The answer of a pull.
#[derive(serde::Serialize)]
struct Answer {
    changes: Vec<Box<RawValue>>,
    cursor: String,
    has_more: bool,
}

/// The changes after `since`, at most `lim`.
pub fn pull(client: &mut SpiClient<'_>, since: Option<&str>, lim: i32) -> Result<Jsonb, SyncError> {
    if !(1..=MAX_LIMIT).contains(&lim) {
        return Err(SyncError::OutOfRange { name: "lim", range: "between 1 and 100000" });
    }
    let (after, epoch) = match since {
        Some(cursor) => Position::decode_with_epoch(cursor)?,
        None => (Position::default(), None),
    };
    // A position is always below the next transaction id of the server that handed it out. A
    // standby may lag its primary a little, never by 2^31 transactions (the wraparound limit):
    // a cursor that far ahead was made up, and would silently hold back every change.
    let next = xact::next_full_xid();
    if after.xid > next.saturating_add(1 << 31) {
        return Err(SyncError::BadCursor);
    }
    // The purge epoch (when the last purge ran, 0: never) goes into every cursor handed out. A
    // cursor from the current epoch is good whatever its position: no tombstone was purged since
    // it was handed out, and its walk (perhaps begun after the purge, from the beginning) has
    // missed nothing. A cursor from before the last purge may have missed a purged tombstone if
    // it lies before it.
    let mut current_epoch = 0;
    let purged =
        client.select(sql::PURGE_HORIZON, None, &[]).expect("inventory_sync: reading the purge horizon failed");
    if let Some(row) = purged.into_iter().next() {
        let newest_purged = Position {
            xid: row.value::<i64>(1).unwrap_or(0) as u64,
            tbl: row.value::<pg_sys::Oid>(2).map_or(0, |o| o.to_u32()),
            row_id: row.value::<String>(3).unwrap_or_default(),
        };
        current_epoch = row.value::<pgrx::datum::TimestampWithTimeZone>(4).map_or(0, |t| t.into_inner());
        // Positions order as the feed does (row ids bytewise, as collation "C").
        if since.is_some() && epoch != Some(current_epoch) && after < newest_purged {
            return Err(SyncError::CursorExpired);
        }
    }

    let default_oid = lookup::default_table_oid();
    let readable = client
        .select(sql::FEED_READABLE, None, &[oid(default_oid.to_u32())])
        .expect("inventory_sync: checking privileges failed")
        .first()
        .get_one::<bool>()
        .expect("inventory_sync: has_table_privilege answers a boolean")
        .unwrap_or(false);
    let args =
        [xid8(after.xid), oid(after.tbl), after.row_id.as_str().into(), oid(default_oid.to_u32()), (lim + 1).into()];
    let feed = if readable { &FEED_WITH_DEFAULT } else { &FEED_TRACKED_ONLY };
    let rows = feed.with(|kept| kept.select_all(client, &args));
    let mut found = Vec::with_capacity(rows.len());
    for row in rows {
        let xid: i64 = row.value(1).unwrap_or(0);
        let tbl: pg_sys::Oid = row.value(2).unwrap_or(pg_sys::InvalidOid);
        let row_id: String = row.value(3).unwrap_or_default();
        let entry: Jsonb = row.value(4).expect("feed entry is NULL");
        let needs_row: bool = row.value(5).unwrap_or(false);
        found.push(Found {
            position: Position { xid: xid as u64, tbl: tbl.to_u32(), row_id },
            entry: entry.to_raw(),
            needs_row,
        });
    }
    let has_more = found.len() > lim as usize;
    found.truncate(lim as usize);
    let cursor = found.last().map(|f| f.position.clone()).unwrap_or(after);

    fill_tracked_rows(client, &mut found)?;
    let changes = found.into_iter().filter_map(|f| (!f.needs_row).then_some(f.entry)).collect();
    let answer = Answer { changes, cursor: cursor.encode_in_epoch(current_epoch), has_more };
    Ok(Jsonb::from_serialize(&answer))
}

/// Give tracked-table upserts their rows, read as the caller may see them. A row the caller may
/// not see (row-level security), or that is gone, or of a table no longer tracked, is left out.
fn fill_tracked_rows(client: &mut SpiClient<'_>, found: &mut [Found]) -> Result<(), SyncError> {
    let mut by_table: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        if f.needs_row {
            by_table.entry(f.position.tbl).or_default().push(i);
        }
    }
    for (tbl, indexes) in by_table {
        let tracked = match catalog::get_for_read(client, pg_sys::Oid::from(tbl)) {
            Ok(t) => t,
            Err(SyncError::NotTracked { .. } | SyncError::TrackingBroken { .. }) => continue,
            Err(e) => return Err(e),
        };
        let keys: Vec<String> = indexes.iter().map(|&i| found[i].position.row_id.clone()).collect();
        let rows = tracked.rows_by_key(client, keys);
        for i in indexes {
            if let Some((data, updated_at)) = rows.get(&found[i].position.row_id) {
                // Only the entry's own keys are read; the row goes in as the text it is.
                let mut entry: BTreeMap<String, Box<RawValue>> =
                    serde_json::from_str(found[i].entry.get()).expect("a feed entry is a JSON object");
                entry.insert("data".into(), data.clone());
                entry.insert("updated_at".into(), updated_at.clone());
                found[i].entry = serde_json::value::to_raw_value(&entry).expect("a feed entry serializes");
                found[i].needs_row = false;
            }
        }
    }
    Ok(())
}
