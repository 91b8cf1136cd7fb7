//! `sync_pull`: the changes after a cursor, for devices to download.
//!
//! Every change carries a feed position (`catalog::positions`): within an era, the 64-bit id of
//! the transaction that made it, shifted. Transaction ids are handed out in start order but
//! commits happen in any order, so neither they nor timestamps nor sequence numbers are safe
//! cursors on their own: a transaction still open when a pull ran can commit later with a
//! smaller id than changes already pulled. So a pull only hands out changes below the horizon of
//! its snapshot, `xmin`, the oldest transaction still running: everything below it has committed
//! or aborted, and every transaction that commits later has an id at or above it. The cursor is
//! the position (position, table id, row id) of the last change handed out; the next pull
//! continues after it, as one range of each feed index. A change is therefore never skipped; a
//! long open write transaction only delays the changes after it until it ends.
//!
//! A row appears once per change with its state at pull time (its latest committed version);
//! a row changed again later appears again. Pull only reads, so it runs on hot standbys too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use std::collections::BTreeMap;

use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;
use serde_json::value::RawValue;

use crate::catalog::{self, cluster, positions};
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::{Kept, Row};
use crate::pg::{lookup, security};
use inventory_sync_core::cursor::{era_of, Cursor, Position, Range};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::Side;
use inventory_sync_core::SyncError;

pub const MAX_LIMIT: i32 = 100_000;

/// How many connections to each node a Citus statement over many shards may open.
const POOL: &str = "citus.max_adaptive_executor_pool_size";

/// The feed statement over `ranges` ranges (see `sql::feed`), kept per backend.
fn feed_statement(with_default: bool, sides: &[Side], ranges: usize) -> Rc<Kept> {
    /// A feed statement's shape: whether it reads the default table, which sides, how many ranges.
    type Shape = (bool, Vec<Side>, usize);
    thread_local! {
        static FEEDS: RefCell<HashMap<Shape, Rc<Kept>>> = RefCell::new(HashMap::new());
    }
    FEEDS.with(|feeds| {
        feeds
            .borrow_mut()
            .entry((with_default, sides.to_vec(), ranges))
            .or_insert_with(|| {
                let mut types = vec![pg_sys::INT4OID, pg_sys::INT4ARRAYOID];
                for _ in 0..ranges {
                    types.extend([
                        pg_sys::INT8OID,
                        pg_sys::INT4OID,
                        pg_sys::TEXTOID,
                        pg_sys::INT8OID,
                        pg_sys::INT8OID,
                        pg_sys::INT8OID,
                    ]);
                }
                Rc::new(Kept::new(
                    sql::feed(with_default, sides, ranges),
                    types.into_iter().map(PgOid::from_untagged).collect(),
                ))
            })
            .clone()
    })
}

/// The feed statement's arguments: at most `limit` rows of the tables `table_ids` (and of the
/// default table, when the caller may read it), then for each range, after its position and below
/// its end.
fn feed_args(ranges: &[Range], limit: i32, table_ids: &[i32]) -> Vec<pgrx::datum::DatumWithOid<'static>> {
    let mut args = vec![limit.into(), table_ids.to_vec().into()];
    for range in ranges {
        let after = &range.after;
        // The default table (table id 0) comes first at every position, its rows in id order:
        // after a change of a tracked table at position p, or before the first row of position
        // p + 1, its part goes on after every id of position p.
        let (default_position, default_id) = match after.default_id() {
            Some(id) => (after.position, id),
            None if after.table_id == 0 => (after.position.saturating_sub(1), i64::MAX),
            None => (after.position, i64::MAX),
        };
        args.extend([
            after.position.into(),
            after.table_id.into(),
            after.row_id.clone().into(),
            range.below.into(),
            default_position.into(),
            default_id.into(),
        ]);
    }
    args
}

/// One change from the feed's first pass: where it is, the tracked table it belongs to (its OID
/// in this database), and its entry as JSON text (complete, or missing the row's data when it
/// comes from a tracked table). Entries are never parsed whole here: the answer is assembled as
/// text and parsed once, as jsonb, by PostgreSQL (a stored row may be nested deeper than a JSON
/// parser in Rust would go).
struct Found {
    position: Position,
    relid: pg_sys::Oid,
    entry: String,
    needs_row: bool,
}

/// The changes after `since`, at most `lim`.
pub fn pull(client: &mut SpiClient<'_>, since: Option<&str>, lim: i32) -> Result<Jsonb, SyncError> {
    if !(1..=MAX_LIMIT).contains(&lim) {
        return Err(SyncError::OutOfRange { name: "lim", range: "between 1 and 100000" });
    }
    let (cursor, epoch) = match since {
        Some(text) => Cursor::decode_with_epoch(text)?,
        None => (Cursor::start(), None),
    };
    let (eras, on_cluster) = positions::pull_eras(client, &cursor, since.is_some())?;
    // On a Citus cluster a page reads every shard of the feed, a small index scan each: one
    // connection per node running them in turn beats Citus's default of opening many
    // (measured: 42 pulls a second against 11, docs/DEVELOPMENT.md "Citus"). As it was after.
    let pool = on_cluster.then(|| cluster::set_locally(client, POOL, "1"));
    // The purge epoch (when the last purge ran, 0: never) goes into every cursor handed out. A
    // cursor from the current epoch is good whatever its position: no tombstone was purged since
    // it was handed out, and its walk (perhaps begun after the purge, from the beginning) has
    // missed nothing. A cursor from before the last purge may have missed a purged tombstone if
    // it has not passed the newest one purged in some era.
    let purged: Vec<(Position, i64)> = client
        .select(sql::PURGE_HORIZON, None, &[])
        .expect("inventory_sync: reading the purge horizon failed")
        .map(|row| {
            let position = row.value::<i64>(1).unwrap_or(0);
            let newest = Position {
                era: era_of(position),
                position,
                table_id: row.value::<i32>(2).unwrap_or(0),
                row_id: row.value::<String>(3).unwrap_or_default(),
            };
            (newest, row.value::<pgrx::datum::TimestampWithTimeZone>(4).map_or(0, |t| t.into_inner()))
        })
        .collect();
    let current_epoch = purged.iter().map(|(_, at)| *at).max().unwrap_or(0);
    if since.is_some() && epoch != Some(current_epoch) && purged.iter().any(|(newest, _)| !cursor.passed(newest)) {
        return Err(SyncError::CursorExpired);
    }

    let readable = security::may_read(lookup::default_table_oid());
    // The tracked tables the caller may read, by table id, and the sides their feed is on.
    let mut tables: HashMap<i32, pg_sys::Oid> = HashMap::new();
    let mut sides: Vec<Side> = Vec::new();
    for row in client.select(sql::FEED_TABLES, None, &[]).expect("inventory_sync: reading the tracked tables failed") {
        let (Some(id), Some(relid)) = (row.value::<i32>(1), row.value::<pg_sys::Oid>(2)) else { continue };
        if security::may_read(relid) {
            tables.insert(id, relid);
            let side = Side::of(lookup::column_type(relid, row.value::<i16>(3).unwrap_or(0)).to_u32());
            if !sides.contains(&side) {
                sides.push(side);
            }
        }
    }
    sides.sort_by_key(|side| Side::ALL.iter().position(|s| s == side));
    let table_ids: Vec<i32> = tables.keys().copied().collect();
    // The ranges in feed order (one on a single server), read by one statement in position
    // order; one row more than the page holds says whether there is more.
    let ranges = cursor.ranges(&eras);
    let rows = if ranges.is_empty() || (!readable && table_ids.is_empty()) {
        Vec::new()
    } else {
        let feed = feed_statement(readable, &sides, ranges.len());
        feed.select_all(client, &feed_args(&ranges, lim + 1, &table_ids)).collect::<Vec<_>>()
    };
    let has_more = rows.len() > lim as usize;
    let mut found: Vec<Found> = Vec::with_capacity(rows.len().min(lim as usize));
    // The names (as JSON) of the tracked tables this page has changes of, looked up once each.
    let mut names: HashMap<pg_sys::Oid, String> = HashMap::new();
    for row in rows.into_iter().take(lim as usize) {
        let mut entry: String = row.value(4).expect("feed entry is NULL");
        let table_id: i32 = row.value(2).expect("a change has a table id");
        let mut relid = pg_sys::InvalidOid;
        if let Some(&oid) = tables.get(&table_id) {
            relid = oid;
            let name = names
                .entry(oid)
                .or_insert_with(|| serde_json::to_string(&lookup::qualified_name(oid)).expect("a name serializes"));
            entry.insert_str(0, &format!("{{\"table\":{name}"));
        }
        let position: i64 = row.value(1).expect("a change has a position");
        found.push(Found {
            position: Position { era: era_of(position), position, table_id, row_id: row.value(3).unwrap_or_default() },
            relid,
            entry,
            needs_row: row.value(5).unwrap_or(false),
        });
    }
    // Every range was walked to its end, unless the page is full: then the ranges before the one
    // its last change is in.
    let ended = match found.last() {
        Some(last) if has_more => {
            ranges.iter().position(|r| r.spans(last.position.era)).expect("a change lies in a range the pull walked")
        }
        _ => ranges.len(),
    };
    let taken: Vec<Position> = found.iter().map(|f| f.position.clone()).collect();
    let cursor = cursor.advance(&eras, &ranges, &taken, ended);

    fill_tracked_rows(client, &mut found)?;
    if let Some(before) = pool {
        cluster::set_locally(client, POOL, &before);
    }
    // The answer's text, from the entries' (valid JSON, each built by the feed statement).
    let size = found.iter().map(|f| f.entry.len() + 1).sum::<usize>() + 128;
    let mut answer = String::with_capacity(size);
    answer.push_str("{\"changes\":[");
    for (i, f) in found.iter().filter(|f| !f.needs_row).enumerate() {
        if i > 0 {
            answer.push(',');
        }
        answer.push_str(&f.entry);
    }
    let cursor = serde_json::to_string(&cursor.encode_in_epoch(current_epoch)).expect("a cursor serializes");
    answer.push_str(&format!("],\"cursor\":{cursor},\"has_more\":{has_more}}}"));
    Ok(Jsonb::from_text(&answer))
}

/// Give tracked-table upserts their rows, read as the caller may see them. A row the caller may
/// not see (row-level security), or that is gone, or of a table no longer tracked, is left out.
fn fill_tracked_rows(client: &mut SpiClient<'_>, found: &mut [Found]) -> Result<(), SyncError> {
    let mut by_table: HashMap<pg_sys::Oid, Vec<usize>> = HashMap::new();
    for (i, f) in found.iter().enumerate() {
        if f.needs_row {
            by_table.entry(f.relid).or_default().push(i);
        }
    }
    for (relid, indexes) in by_table {
        let tracked = match catalog::get_for_read(client, relid) {
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
                    serde_json::from_str(&found[i].entry).expect("a feed entry is a JSON object");
                entry.insert("data".into(), data.clone());
                entry.insert("updated_at".into(), updated_at.clone());
                found[i].entry = serde_json::to_string(&entry).expect("a feed entry serializes");
                found[i].needs_row = false;
            }
        }
    }
    Ok(())
}
