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
//!
//! On a Citus cluster every node writes (the calls are delegated to the node that holds the row),
//! each with its own transaction ids: `inventory_sync.distribute()` gives each node an era of its
//! own, all of one cohort, started together. A pull walks each era of the latest cohort up to the
//! horizon of the node that writes in it, which each node answers for (docs/DEVELOPMENT.md,
//! "Citus").

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::pg::kept::{select_one, Row};
use crate::pg::{lookup, relcache, xact};
use inventory_sync_core::cursor::{era_start, Cursor, Era};
use inventory_sync_core::sql;
use inventory_sync_core::SyncError;

const MAX_ERA: i32 = 32_767;

/// The era this backend writes in, while no invalidation of the eras table arrived (a re-created
/// extension has another eras table; `distribute()` sends one when it gives the nodes their eras),
/// and, while the transaction that recorded it has not ended (the record may still roll back),
/// that transaction.
#[derive(Clone, Copy)]
struct Writing {
    generation: u64,
    era: i32,
    only_in: Option<i64>,
}

thread_local! {
    static WRITING: Cell<Option<Writing>> = const { Cell::new(None) };
}

/// This cluster and database, as the eras name the writer of each.
pub fn this_writer() -> (i64, u32) {
    (xact::system_identifier(), xact::database_id().to_u32())
}

/// Era `era`, if there may be one so high (positions hold 32,767 eras).
pub fn check_era(era: i32) -> Result<i32, SyncError> {
    if era > MAX_ERA {
        return Err(SyncError::OutOfRange { name: "the number of eras", range: "at most 32767" });
    }
    Ok(era)
}

/// One era as recorded: its number, cohort, the cluster and database that write in it, and the
/// highest position stored when it began.
struct Recorded {
    era: i32,
    cohort: i32,
    system: i64,
    database: pg_sys::Oid,
    previous_end: i64,
}

impl Recorded {
    fn writer(&self) -> (i64, u32) {
        (self.system, self.database.to_u32())
    }

    fn is_mine(&self) -> bool {
        self.writer() == this_writer()
    }
}

fn recorded(client: &SpiClient<'_>) -> Vec<Recorded> {
    client
        .select(sql::ERAS, None, &[])
        .expect("inventory_sync: reading inventory_sync.eras failed")
        .map(|row| Recorded {
            era: row.value(1).expect("an era has a number"),
            cohort: row.value(2).expect("an era has a cohort"),
            system: row.value(3).expect("an era has a cluster"),
            database: row.value(4).expect("an era has a database"),
            previous_end: row.value(5).expect("an era has a previous end"),
        })
        .collect()
}

/// The latest cohort's eras (several on a cluster; one on a single server).
fn latest_cohort(eras: &[Recorded]) -> &[Recorded] {
    let Some(cohort) = eras.iter().map(|e| e.cohort).max() else { return &[] };
    let first = eras.iter().position(|e| e.cohort == cohort).expect("the latest cohort has an era");
    &eras[first..]
}

/// Whether the eras (of one cohort) are written by several nodes.
fn several(eras: &[Recorded]) -> bool {
    eras.windows(2).any(|w| w[0].era != w[1].era)
}

/// The feed position of a change the current transaction writes now; records this cluster's
/// and database's era first if the latest era is another's (or there is none).
pub fn for_write(client: &mut SpiClient<'_>) -> Result<i64, SyncError> {
    let xid = xact::top_full_xid() as i64;
    let generation = relcache::generation(lookup::own_table_oid(c"eras"));
    if let Some(w) = WRITING.get() {
        if w.generation == generation && w.only_in.is_none_or(|x| x == xid) {
            return Ok(era_start(w.era) + xid);
        }
    }
    let eras = recorded(client);
    let latest = latest_cohort(&eras);
    let era = match latest.iter().find(|e| e.is_mine()) {
        // Recorded by another transaction (so committed), or by this one earlier.
        Some(mine) => {
            let only_in = WRITING.get().and_then(|w| w.only_in).filter(|x| *x == xid);
            WRITING.set(Some(Writing { generation, era: mine.era, only_in }));
            mine.era
        }
        // The nodes of a cluster write in the eras distribute() gave them, and only there.
        None if several(latest) => return Err(SyncError::NodeWithoutEra),
        None => {
            let era = check_era(eras.last().map_or(1, |latest| latest.era + 1))?;
            let args =
                [era.into(), xact::system_identifier().into(), xact::database_id().into(), era_start(era).into()];
            super::as_owner_of(c"eras", || {
                client.update(&sql::era_start(), None, &args).expect("inventory_sync: recording an era failed");
            });
            WRITING.set(Some(Writing { generation, era, only_in: Some(xid) }));
            era
        }
    };
    Ok(era_start(era) + xid)
}

/// A node of the cluster as it answers: its node id, (cluster, database), and its horizon (the
/// oldest transaction still running there).
pub struct Node {
    pub id: i32,
    pub writer: (i64, u32),
    pub xmin: i64,
}

/// A node's answer of `inventory_sync.node_horizon()`: its (cluster, database) and horizon.
fn parse_horizon(text: &str) -> Option<((i64, u32), i64)> {
    let [system, database, xmin] = text.split(' ').collect::<Vec<_>>()[..] else { return None };
    Some(((system.parse().ok()?, database.parse().ok()?), xmin.parse().ok()?))
}

/// The answers of a `run_command_on_all_nodes` statement (node id, success, result): each node's
/// id and result, or the first node that did not answer.
pub fn answers_of_all_nodes(
    client: &SpiClient<'_>,
    statement: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Vec<(i32, String)>, SyncError> {
    let mut answers = Vec::new();
    for row in client.select(statement, None, args).expect("inventory_sync: asking the nodes failed") {
        let node: i32 = row.value(1).expect("a node has an id");
        let result: String = row.value(3).unwrap_or_default();
        if row.value::<bool>(2) != Some(true) {
            return Err(SyncError::NodeUnreachable { node, message: result });
        }
        answers.push((node, result));
    }
    Ok(answers)
}

/// Every node of the cluster, as each answers now, over a new connection to each.
pub fn nodes(client: &SpiClient<'_>) -> Result<Vec<Node>, SyncError> {
    answers_of_all_nodes(client, sql::NODE_HORIZONS, &[])?
        .into_iter()
        .map(|(node, result)| {
            let (writer, xmin) = parse_horizon(&result)
                .ok_or_else(|| SyncError::NodeUnreachable { node, message: format!("unexpected answer {result:?}") })?;
            Ok(Node { id: node, writer, xmin })
        })
        .collect()
}

thread_local! {
    /// Writers (cluster, database) that a complete answer of the cluster's nodes did not include:
    /// nodes that left, or databases restored from elsewhere. Nothing more is written in their eras.
    static GONE: RefCell<HashSet<(i64, u32)>> = RefCell::new(HashSet::new());
    /// A row of the probe on each node that holds some (`sql::PROBE_KEYS`), as found last.
    static PROBE_KEYS: RefCell<Option<Vec<i64>>> = const { RefCell::new(None) };
}

/// The horizon of every node that writes in one of `recorded`'s eras. First through the probe: one
/// statement reaching each node that holds shards of the default table's group, over Citus's
/// cached connections. If an era's writer did not answer there (the coordinator, which holds no
/// shards; a node that left), every node is asked over new connections, and the writers missing
/// from that complete answer are remembered as gone. If fewer nodes answered the probe than it
/// asked (a shard moved), its rows are looked up again for the next pull.
fn horizons(client: &SpiClient<'_>, recorded: &[Recorded]) -> Result<HashMap<(i64, u32), i64>, SyncError> {
    let keys = PROBE_KEYS.with(|k| k.borrow().clone()).unwrap_or_else(|| {
        let found: Vec<i64> = select_one(client, sql::PROBE_KEYS, &[]).unwrap_or_default();
        PROBE_KEYS.with(|k| *k.borrow_mut() = Some(found.clone()));
        found
    });
    let mut horizons: HashMap<(i64, u32), i64> = HashMap::new();
    let answers = client
        .select(sql::PROBE_HORIZONS, None, &[keys.clone().into()])
        .expect("inventory_sync: asking the nodes failed");
    for row in answers {
        let answer: String = row.value(1).unwrap_or_default();
        let (writer, xmin) = parse_horizon(&answer).expect("inventory_sync: node_horizon() answers three numbers");
        horizons.entry(writer).and_modify(|h| *h = (*h).min(xmin)).or_insert(xmin);
    }
    if horizons.len() < keys.len() {
        PROBE_KEYS.with(|k| *k.borrow_mut() = None);
    }
    let unanswered = recorded
        .iter()
        .filter(|r| !r.is_mine())
        .map(Recorded::writer)
        .any(|w| !horizons.contains_key(&w) && !GONE.with(|gone| gone.borrow().contains(&w)));
    if unanswered {
        horizons = nodes(client)?.into_iter().map(|n| (n.writer, n.xmin)).collect();
        for writer in recorded.iter().filter(|r| !r.is_mine()).map(Recorded::writer) {
            if !horizons.contains_key(&writer) {
                GONE.with(|gone| gone.borrow_mut().insert(writer));
            }
        }
    }
    Ok(horizons)
}

/// The database's eras as a pull walks them (see [`Era`]), and the cursor checked against them
/// (`from_cursor` false: the start, nothing to check); and whether the pull runs on a Citus
/// cluster whose nodes write (and were asked for their horizons).
pub fn pull_eras(client: &SpiClient<'_>, cursor: &Cursor, from_cursor: bool) -> Result<(Vec<Era>, bool), SyncError> {
    let recorded = recorded(client);
    let latest = latest_cohort(&recorded);
    let cluster = several(latest);
    // The nodes' horizons are asked after this pull's snapshot of the eras, and before its feed
    // statements take theirs: whatever lies below a horizon has ended before the feed is read.
    let horizons = if cluster && select_one(client, sql::HAS_CITUS, &[]) == Some(true) {
        Some(horizons(client, &recorded)?)
    } else {
        None
    };
    let local_xmin: i64 = select_one(client, sql::SNAPSHOT_XMIN, &[]).expect("a snapshot has a horizon");
    let mut eras = vec![Era::finished(0)];
    for r in &recorded {
        if eras.last().is_some_and(|e| e.era == r.era) {
            continue;
        }
        let below = if r.is_mine() {
            // This cluster and database write in it: changes below the snapshot's horizon are
            // all committed or rolled back, and every later commit lands above it.
            Some(local_xmin)
        } else {
            // Another node's era: up to its horizon while it is part of the cluster, also when a
            // later cohort has begun (a transaction that began before may still write in it).
            // A database restored here, or a node that left: nothing more comes.
            horizons.as_ref().and_then(|h| h.get(&r.writer())).copied()
        };
        eras.push(match below {
            Some(xmin) => Era { era: r.era, below: era_start(r.era) + xmin },
            None => Era::finished(r.era),
        });
    }
    if from_cursor {
        check(cursor, &recorded, &eras)?;
    }
    Ok((eras, horizons.is_some()))
}

/// A cursor this database may have handed out, of its own history.
fn check(cursor: &Cursor, recorded: &[Recorded], eras: &[Era]) -> Result<(), SyncError> {
    let last = eras.last().expect("era 0 is always there").era;
    if cursor.floor > last.saturating_add(1) {
        return Err(SyncError::BadCursor);
    }
    for part in &cursor.parts {
        let era = eras.iter().find(|e| e.era == part.era).ok_or(SyncError::BadCursor)?;
        if !era.is_finished() && part.position > era.below.saturating_add(1 << 31) {
            // A standby may lag its primary a little, never by 2^31 transactions (the wraparound
            // limit): a cursor that far ahead was made up, and would silently hold back every change.
            return Err(SyncError::BadCursor);
        }
        // The history of a finished era ended where the next cohort began: a part beyond it was
        // handed out by a copy of the database that went on after the backup this one was
        // restored from, and holds changes this database does not have. (Cursors of the first
        // release, era 0, name no cluster: they are honoured as they are.)
        if !era.is_finished() {
            continue;
        }
        let Some(cohort) = recorded.iter().find(|r| r.era == part.era).map(|r| r.cohort) else { continue };
        let next = recorded.iter().filter(|r| r.cohort > cohort).map(|r| r.cohort).min();
        let end = recorded.iter().filter(|r| Some(r.cohort) == next).map(|r| r.previous_end).max();
        if end.is_some_and(|end| part.position > end) {
            return Err(SyncError::CursorFromOtherHistory);
        }
    }
    Ok(())
}
