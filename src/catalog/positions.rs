//! Feed positions that survive a backup and restore (the argument is in docs/DEVELOPMENT.md,
//! "Feed positions").
//!
//! A change's position is `era * 2^48 + xid`, where `xid` is the 64-bit id of the transaction
//! that made it and `era` the stretch of history one cluster and database write
//! (`inventory_sync.eras`). Within an era, positions order like transaction ids, so a pull below
//! its snapshot's horizon never skips a change still being written. A database restored into
//! another cluster (whose transaction ids may be far lower) or another database starts the next
//! era with its first write: every position in it lies above every position stored before, so
//! positions only grow, and cursors handed out before the backup go on.
//!
//! Starting an era takes no lock: concurrent first writers each record the same era (the next
//! number, for the same cluster and database), and each uses it at once.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::pg::kept::Row;
use crate::pg::{lookup, xact};
use inventory_sync_core::cursor::Position;
use inventory_sync_core::sql;
use inventory_sync_core::SyncError;

/// Positions of era `e` are `e * ERA_SPAN + xid`: room for 2^48 transactions per era (89 years at
/// 100,000 transactions a second), and for 32,767 eras in a bigint.
pub const ERA_SPAN: i64 = 1 << 48;
const MAX_ERA: i32 = 32_767;

/// The first position of era `era`.
fn era_start(era: i32) -> i64 {
    i64::from(era) * ERA_SPAN
}

/// The era this backend writes in, keyed by the eras table's OID (a re-created extension starts
/// over), and, while the transaction that recorded it has not ended (the record may still roll
/// back), that transaction.
#[derive(Clone, Copy)]
struct Writing {
    eras_table: pg_sys::Oid,
    era: i32,
    only_in: Option<i64>,
}

thread_local! {
    static WRITING: Cell<Option<Writing>> = const { Cell::new(None) };
}

/// The latest era, and whether this cluster and database write in it; and the horizon (the
/// oldest transaction still running) of the current snapshot.
struct Latest {
    era: Option<(i32, bool)>,
    snapshot_xmin: i64,
}

fn latest(client: &SpiClient<'_>) -> Latest {
    let rows = client.select(sql::ERA_LATEST, None, &[]).expect("inventory_sync: reading inventory_sync.eras failed");
    let row = rows.first();
    let snapshot_xmin = row.value::<i64>(4).expect("a snapshot has a horizon");
    let era = row.value::<i32>(1).map(|era| {
        let system: i64 = row.value(2).expect("an era has a cluster");
        let database: pg_sys::Oid = row.value(3).expect("an era has a database");
        (era, system == xact::system_identifier() && database == xact::database_id())
    });
    Latest { era, snapshot_xmin }
}

/// The feed position of a change the current transaction writes now; records this cluster's
/// and database's era first if the latest era is another's (or there is none).
pub fn for_write(client: &mut SpiClient<'_>) -> Result<i64, SyncError> {
    let xid = xact::top_full_xid() as i64;
    let eras_table = lookup::own_table_oid(c"eras");
    if let Some(w) = WRITING.get() {
        if w.eras_table == eras_table && w.only_in.is_none_or(|x| x == xid) {
            return Ok(era_start(w.era) + xid);
        }
    }
    let era = match latest(client).era {
        // Recorded by another transaction (so committed), or by this one earlier.
        Some((era, true)) => {
            let only_in = WRITING.get().and_then(|w| w.only_in).filter(|x| *x == xid);
            WRITING.set(Some(Writing { eras_table, era, only_in }));
            era
        }
        other => {
            let era = other.map_or(1, |(latest, _)| latest + 1);
            if era > MAX_ERA {
                return Err(SyncError::OutOfRange { name: "the number of eras", range: "at most 32767" });
            }
            let args =
                [era.into(), xact::system_identifier().into(), xact::database_id().into(), era_start(era).into()];
            super::as_owner_of(c"eras", || {
                client.update(sql::ERA_START, None, &args).expect("inventory_sync: recording an era failed");
            });
            WRITING.set(Some(Writing { eras_table, era, only_in: Some(xid) }));
            era
        }
    };
    Ok(era_start(era) + xid)
}

/// Where a pull stands: the cursor checked against the history, the position below which it
/// may hand out changes, and the era its new cursor names.
pub struct PullRange {
    pub after: Position,
    pub below: i64,
    pub era: i32,
}

/// Check a decoded cursor (`after`; `from_cursor` false: the start) against this database's
/// history and find the horizon.
pub fn pull_range(client: &SpiClient<'_>, after: Position, from_cursor: bool) -> Result<PullRange, SyncError> {
    let latest = latest(client);
    let (era, below) = match latest.era {
        // This cluster and database write in the latest era: changes below the snapshot's
        // horizon are all committed or rolled back, and every later commit lands above it.
        Some((era, true)) => (era, era_start(era) + latest.snapshot_xmin),
        // No write here since the database was restored (or created), as this snapshot sees it:
        // the next writes land in the next era. Everything before it is committed; the next era
        // is not handed out yet, not even what the pull's own (later) snapshot may see of it.
        Some((era, false)) => (era, era_start(era + 1)),
        None => (0, era_start(1)),
    };
    if from_cursor {
        if after.era > era || after.position >= era_start(after.era.saturating_add(1)) {
            return Err(SyncError::BadCursor);
        }
        if after.era < era && after.era > 0 {
            // The history of the cursor's era ended where the next era began: a cursor beyond it
            // was handed out by a copy of the database that went on after the backup this one
            // was restored from, and holds changes this database does not have. (Cursors of the
            // first release, era 0, name no cluster: they are honoured as they are.)
            let end = client
                .select(sql::ERA_PREVIOUS_END, None, &[(after.era + 1).into()])
                .expect("inventory_sync: reading inventory_sync.eras failed")
                .first()
                .get_one::<i64>()
                .expect("inventory_sync: an era's previous end is a bigint");
            if end.is_some_and(|end| after.position > end) {
                return Err(SyncError::CursorFromOtherHistory);
            }
        } else if after.position > below.saturating_add(1 << 31) {
            // A standby may lag its primary a little, never by 2^31 transactions (the wraparound
            // limit): a cursor that far ahead was made up, and would silently hold back every change.
            return Err(SyncError::BadCursor);
        }
    }
    Ok(PullRange { after, below, era })
}
