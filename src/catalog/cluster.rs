//! `distribute()`: the extension spread over a Citus cluster (docs/SCALING.md). The extension's
//! script runs on every node and cannot do this itself: Citus distributes tables from the
//! coordinator, once the nodes are there.
//!
//! Each node writes with its own transaction ids, so each gets an era of its own, all of one
//! cohort (`catalog::positions`). Running it again (after adding a node) gives every node a new
//! era of a new cohort: only transactions that began before still write in a node's old era, and
//! pulls walk it up to that node's horizon while the node is there.
//!
//! It also replicates the catalogs, delegates the single-row calls to the node that holds the row
//! (`sql::DISTRIBUTE`, `sql::DELEGATED`) and has every node stamp the positions of the feed rows it
//! stores; `announce` tells every node of a change of a replicated table. `teardown` undoes it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use super::positions;
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::{select_one, Row};
use crate::pg::{lookup, param};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::{validate_key, Side};
use inventory_sync_core::SyncError;

pub(super) fn yes(client: &SpiClient<'_>, statement: &str) -> bool {
    select_one(client, statement, &[]) == Some(true)
}

/// Run one of the extension's statements of administration, which fails only with the server.
pub(super) fn run(client: &mut SpiClient<'_>, statement: &str) {
    client.update(statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
}

/// Set `name` to `value` until the transaction ends; answers what it was, to set it back with.
pub fn set_locally(client: &SpiClient<'_>, name: &str, value: &str) -> String {
    select_one(client, sql::SET_LOCALLY, &[name.into(), value.into()]).expect("a setting has a value")
}

/// `f` with `citus.enable_unsafe_triggers` on, without which Citus neither creates nor drops a
/// trigger of a distributed table; the setting as it was after.
pub(super) fn with_triggers_allowed(client: &mut SpiClient<'_>, f: impl FnOnce(&mut SpiClient<'_>)) {
    let before = set_locally(client, "citus.enable_unsafe_triggers", "on");
    f(client);
    set_locally(client, "citus.enable_unsafe_triggers", &before);
}

/// Record era `era` of cohort `cohort` for `writer` (cluster, database), after `previous_end`.
pub(super) fn give_era(client: &mut SpiClient<'_>, era: i32, cohort: i32, writer: (i64, u32), previous_end: i64) {
    let (system, database) = writer;
    let args = [era.into(), cohort.into(), system.into(), pg_sys::Oid::from(database).into(), previous_end.into()];
    client.update(sql::ERA_GIVE, None, &args).expect("inventory_sync: recording an era failed");
}

/// That this is a Citus coordinator (`function` says what runs only there).
fn check_on_coordinator(client: &SpiClient<'_>, function: &'static str) -> Result<(), SyncError> {
    if !yes(client, sql::HAS_CITUS) {
        return Err(SyncError::NotACluster("extension \"citus\" is not installed in this database"));
    }
    if !yes(client, sql::IS_COORDINATOR) {
        return Err(SyncError::NotACluster(function));
    }
    Ok(())
}

/// That this is a Citus coordinator, where the current user owns the extension's tables.
pub(super) fn check_coordinator(client: &SpiClient<'_>, function: &'static str) -> Result<(), SyncError> {
    check_on_coordinator(client, function)?;
    if !lookup::is_owner(lookup::default_table_oid()) {
        return Err(SyncError::NotOwner { table: "inventory_sync.inventory".into() });
    }
    Ok(())
}

/// Spread the tables (once) and give every node an era; answers the cohort and each node's era.
pub fn distribute(client: &mut SpiClient<'_>) -> Result<Jsonb, SyncError> {
    check_coordinator(client, "inventory_sync.distribute() runs on the Citus coordinator")?;
    let mut distributed_now = Vec::new();
    if !yes(client, sql::IS_DISTRIBUTED) {
        sql::DISTRIBUTE_FIRST.iter().for_each(|statement| run(client, statement));
        distributed_now = distribute_tracked(client)?;
        let catalogs = Catalogs::set_aside(client);
        sql::DISTRIBUTE.iter().for_each(|statement| run(client, statement));
        catalogs.put_back(client);
    }
    // A row on every shard of the probe, through which pulls ask the nodes for their horizons.
    client.update(sql::PROBE_FILL, None, &[]).expect("inventory_sync: filling the node probe failed");
    let tracked: Vec<(pg_sys::Oid, i16)> = client
        .select(sql::FEED_TABLES, None, &[])
        .expect("inventory_sync: reading the tracked tables failed")
        .map(|row| (row.value(2).expect("an OID"), row.value(3).expect("a key column")))
        .collect();
    // The tables distributed just now are numbered alike everywhere (and the other nodes, which
    // are asked over new connections, cannot see them before this transaction commits).
    for (relid, attnum) in tracked.into_iter().filter(|(relid, _)| !distributed_now.contains(relid)) {
        check_on_every_node(client, relid, attnum, lookup::column_type(relid, attnum).to_u32())?;
    }
    let (cohort, previous_end) = cohort_start(client);
    let mut nodes: Vec<(i32, (i64, u32))> = positions::nodes(client)?.into_iter().map(|n| (n.id, n.writer)).collect();
    // This node too, also when the coordinator is not among the nodes Citus runs commands on.
    let me = positions::this_writer();
    if !nodes.iter().any(|(_, node)| *node == me) {
        nodes.push((0, me));
    }
    nodes.sort();
    let mut eras = Vec::with_capacity(nodes.len());
    for (i, (id, writer)) in nodes.into_iter().enumerate() {
        let era = positions::check_era(cohort + i as i32)?;
        give_era(client, era, cohort, writer, previous_end);
        eras.push(serde_json::json!({"node": id, "era": era}));
    }
    stamp_positions(client);
    positions::answers_of_all_nodes(client, sql::JOURNAL_ID_RANGES, &[])?;
    announce(client, c"eras");
    announce(client, c"tracked");
    announce(client, c"field_policies");
    sql::delegate().iter().for_each(|statement| run(client, statement));
    Ok(Jsonb::from_text(&serde_json::json!({"cohort": cohort, "eras": eras}).to_string()))
}

/// The tracked tables Citus does not hold yet, each distributed by its key (`spread`). Before the
/// catalogs that name them are copied to every node, which needs them there. Answers the tables
/// distributed.
fn distribute_tracked(client: &mut SpiClient<'_>) -> Result<Vec<pg_sys::Oid>, SyncError> {
    let failed = "inventory_sync: reading the tracked tables failed";
    let tables: Vec<(pg_sys::Oid, String, i16, pg_sys::Oid)> = client
        .select(sql::TRACKED_UNDISTRIBUTED, None, &[])
        .expect(failed)
        .map(|r| {
            (r.value(1).expect(failed), r.value(2).expect(failed), r.value(3).expect(failed), r.value(4).expect(failed))
        })
        .collect();
    let mut distributed = Vec::with_capacity(tables.len());
    for (relid, key, attnum, key_type) in tables {
        spread(client, relid, &key, attnum, key_type.to_u32())?;
        distributed.push(relid);
    }
    Ok(distributed)
}

/// Distribute table `relid` by its key column `key` (number `attnum`, of type `key_type`),
/// colocated by key type (`tracking::Side::colocated_with`: a bigint key with the default table, a
/// `uuid` or `text` key with its side's tables), so that a row and its side rows are on one node
/// and its delegated calls run there whole. Refused: a key Citus cannot colocate so (an `integer`
/// key, a text key of another collation), and a table with a column dropped before another
/// (Citus makes the workers' copies without it, numbered otherwise). Answers what it was
/// colocated with.
fn spread(
    client: &mut SpiClient<'_>,
    relid: pg_sys::Oid,
    key: &str,
    attnum: i16,
    key_type: u32,
) -> Result<&'static str, SyncError> {
    let colocate_with = colocation_of(client, relid, attnum, key_type)?;
    if select_one(client, sql::HAS_DROPPED_COLUMN, &[relid.into()]) == Some(true) {
        return Err(SyncError::DroppedColumns { table: lookup::qualified_name(relid) });
    }
    client
        .update(sql::DISTRIBUTE_TABLE, None, &[relid.into(), key.into(), colocate_with.into()])
        .expect("inventory_sync: distributing a table failed");
    Ok(colocate_with)
}

/// The table that table `relid`, whose key is column `attnum` of type `key_type`, is to be
/// colocated with on a Citus cluster, or why it cannot be (`SyncError::KeyNotColocatable`).
fn colocation_of(
    client: &SpiClient<'_>,
    relid: pg_sys::Oid,
    attnum: i16,
    key_type: u32,
) -> Result<&'static str, SyncError> {
    let table = || lookup::qualified_name(relid);
    let with = Side::colocated_with(key_type)
        .ok_or_else(|| SyncError::KeyNotColocatable { table: table(), collation: false })?;
    if Side::of(key_type) == Side::Text
        && select_one(client, sql::DEFAULT_COLLATION, &[relid.into(), attnum.into()]) != Some(true)
    {
        return Err(SyncError::KeyNotColocatable { table: table(), collation: true });
    }
    Ok(with)
}

/// The catalogs' rows (tracked tables, merge policies) while Citus makes the catalogs reference
/// tables (`sql::CATALOGS_EMPTY` says why).
struct Catalogs {
    tracked: Vec<(pg_sys::Oid, i16, i16, TimestampWithTimeZone, String, i32)>,
    policies: Vec<(pg_sys::Oid, String, String)>,
}

impl Catalogs {
    fn set_aside(client: &mut SpiClient<'_>) -> Catalogs {
        let failed = "inventory_sync: reading the catalogs failed";
        let tracked = client
            .select(sql::TRACKED_ROWS, None, &[])
            .expect(failed)
            .map(|r| {
                let (relid, key, ts) =
                    (r.value(1).expect(failed), r.value(2).expect(failed), r.value(3).expect(failed));
                (relid, key, ts, r.value(4).expect(failed), r.value(5).expect(failed), r.value(6).expect(failed))
            })
            .collect();
        let policies = client
            .select(sql::POLICY_ROWS, None, &[])
            .expect(failed)
            .map(|r| (r.value(1).expect(failed), r.value(2).expect(failed), r.value(3).expect(failed)))
            .collect();
        sql::CATALOGS_EMPTY.iter().for_each(|statement| run(client, statement));
        Catalogs { tracked, policies }
    }

    fn put_back(self, client: &mut SpiClient<'_>) {
        let failed = "inventory_sync: writing the catalogs back failed";
        for (relid, key, ts, at, by, id) in &self.tracked {
            let args =
                [param::regclass(*relid), (*key).into(), (*ts).into(), (*at).into(), by.as_str().into(), (*id).into()];
            client.update(sql::TRACKED_PUT, None, &args).expect(failed);
        }
        for (relid, field, policy) in &self.policies {
            let args = [param::regclass(*relid), field.as_str().into(), policy.as_str().into()];
            client.update(sql::SET_POLICY, None, &args).expect(failed);
        }
    }
}

/// The next cohort's number (its first era's) and the highest position stored, with the eras
/// locked against other givers until the transaction ends.
pub(super) fn cohort_start(client: &mut SpiClient<'_>) -> (i32, i64) {
    client.update(sql::ERAS_LOCK, None, &[]).expect("inventory_sync: locking the eras failed");
    let row = client.select(&sql::cohort_start(), None, &[]).expect("inventory_sync: reading the positions failed");
    let row = row.first();
    (row.value(2).expect("a next era"), row.value(1).expect("a highest position"))
}

/// Every node stamps the positions of the feed rows it stores (`stamp_position`), also of writes
/// run from another node: a write's rows become visible on each node when that node commits its
/// part, after the node that ran it may have committed (two-phase commit), so only the storing
/// node's transaction ids order them against its horizon.
fn stamp_positions(client: &mut SpiClient<'_>) {
    with_triggers_allowed(client, |client| sql::stamp_positions().iter().for_each(|statement| run(client, statement)));
}

/// On a Citus coordinator, for a table to track (whose key is column `attnum` of type
/// `key_type`): that it is on every node once the extension is spread over the cluster (the calls
/// run on the nodes, delegated ones on a worker); if Citus spreads it, that it does so by its key,
/// colocated with the side tables of its key type, so that each write of a row runs on one node
/// (its lock, its row and its side rows there; see docs/DEVELOPMENT.md "Citus"); and that every
/// node numbers its columns as this one does. The catalogs (on every node alike) name a tracked
/// table's key and timestamp columns by number, and Citus makes the workers' copies of a table
/// without the columns dropped before it was distributed.
pub fn check_on_every_node(
    client: &SpiClient<'_>,
    relid: pg_sys::Oid,
    attnum: i16,
    key_type: u32,
) -> Result<(), SyncError> {
    if !yes(client, sql::HAS_CITUS) || !yes(client, sql::IS_COORDINATOR) {
        return Ok(());
    }
    let Some(spread_as) = client
        .select(sql::SPREAD_AS, None, &[relid.into(), attnum.into(), Side::colocated_with(key_type).into()])
        .expect("inventory_sync: reading how Citus holds a table failed")
        .next()
        .map(|row| (row.value::<bool>(1), row.value::<bool>(2)))
    else {
        if yes(client, sql::IS_DISTRIBUTED) {
            return Err(SyncError::NotOnTheCluster { table: lookup::qualified_name(relid) });
        }
        return Ok(());
    };
    // Before distribute() the side tables are not spread yet: distribute() checks it then.
    if spread_as.0 == Some(true) && spread_as.1 != Some(true) && yes(client, sql::IS_DISTRIBUTED) {
        let with = colocation_of(client, relid, attnum, key_type)?;
        return Err(SyncError::NotColocated { table: lookup::qualified_name(relid), with });
    }
    let here: String = select_one(client, sql::COLUMN_NUMBERS, &[relid.into()]).unwrap_or_default();
    let table = lookup::qualified_name(relid);
    let answers = positions::answers_of_all_nodes(client, sql::COLUMN_NUMBERS_ON_ALL_NODES, &[table.as_str().into()])?;
    if let Some((node, _)) = answers.into_iter().find(|(_, there)| *there != here) {
        return Err(SyncError::NumberedOtherwise { table, node });
    }
    Ok(())
}

/// On a Citus coordinator, after a change of one of the extension's replicated tables (`table`:
/// the eras or a catalog): an `ALTER TABLE` of it, which Citus runs on every node in this
/// transaction, so every backend on every node drops what it derived from the table when the
/// change commits (`pg::relcache::generation`). Elsewhere (one server, where the change's own
/// invalidations suffice, or a worker) nothing.
pub fn announce(client: &mut SpiClient<'_>, table: &CStr) {
    let relid = lookup::own_table_oid(table);
    let replicated = || select_one(client, sql::IS_REPLICATED, &[relid.into()]) == Some(true);
    if !yes(client, sql::HAS_CITUS) || !replicated() || !yes(client, sql::IS_COORDINATOR) {
        return;
    }
    let statement = format!("ALTER TABLE inventory_sync.{} SET (fillfactor = 100)", table.to_str().expect("a name"));
    super::as_owner_of(table, || {
        client.update(&statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"))
    });
}

/// On a distributed Citus cluster, the node group that holds the row of table `relid` whose key
/// is `key`: where a call delegated by that row runs. None for a table Citus keeps on every node
/// or not at all.
pub fn group_of(client: &SpiClient<'_>, relid: pg_sys::Oid, key: DatumWithOid<'_>) -> Option<i32> {
    select_one(client, sql::ROW_GROUP, &[relid.into(), key])
}

/// Whether the extension is spread over a Citus cluster (`distribute()` ran).
pub fn is_distributed(client: &SpiClient<'_>) -> bool {
    yes(client, sql::HAS_CITUS) && yes(client, sql::IS_DISTRIBUTED)
}

thread_local! {
    /// Each node group's key of the default table (see `group_keys`), as found last.
    static GROUP_KEYS: RefCell<HashMap<i32, i64>> = RefCell::new(HashMap::new());
}

/// Each node group's key: a key of the default table on that node, by which `sync_push_on` is
/// delegated there. Kept per backend and checked on each call (a shard may have moved, a node
/// may have come): the first keys from 1 on that land on each group.
pub fn group_keys(client: &SpiClient<'_>) -> HashMap<i32, i64> {
    let default_table = lookup::default_table_oid();
    let group_of_key = |key: i64| group_of(client, default_table, key.into());
    let groups: Vec<i32> = client
        .select(sql::DEFAULT_TABLE_GROUPS, None, &[])
        .expect("inventory_sync: reading where the shards are failed")
        .filter_map(|row| row.value::<i32>(1))
        .collect();
    let kept = GROUP_KEYS.with(|k| k.borrow().clone());
    let still = kept.len() == groups.len()
        && groups.iter().all(|g| kept.get(g).is_some_and(|&key| group_of_key(key) == Some(*g)));
    if still {
        return kept;
    }
    let mut found: HashMap<i32, i64> = HashMap::new();
    // Each key lands on a shard at random: a few keys a group, far fewer than this bound.
    for key in 1..=100_000_i64 {
        if found.len() == groups.len() {
            break;
        }
        if let Some(group) = group_of_key(key) {
            found.entry(group).or_insert(key);
        }
    }
    GROUP_KEYS.with(|k| *k.borrow_mut() = found.clone());
    found
}

/// `distribute(tbl)`: after `distribute()`, one more table spread over the cluster, by its key,
/// colocated as `distribute()` colocates a tracked table (`tracking::Side::colocated_with`), so
/// that it can be tracked and its calls delegated. A table Citus holds already is left as it is.
pub fn distribute_table(client: &mut SpiClient<'_>, relid: pg_sys::Oid) -> Result<Jsonb, SyncError> {
    let name = lookup::qualified_name(relid);
    check_on_coordinator(client, "inventory_sync.distribute(tbl) runs on the Citus coordinator")?;
    if !yes(client, sql::IS_DISTRIBUTED) {
        return Err(SyncError::NotACluster("inventory_sync.distribute(tbl) runs after inventory_sync.distribute()"));
    }
    if !lookup::is_owner(relid) {
        return Err(SyncError::NotOwner { table: name });
    }
    let (columns, primary_key) = super::describe::describe(client, relid);
    let key = &columns[validate_key(&name, &columns, &primary_key)?];
    if select_one(client, sql::IS_REPLICATED, &[relid.into()]) == Some(true) {
        return Ok(Jsonb::from_text(&serde_json::json!({"table": name, "distributed": false}).to_string()));
    }
    let colocate_with = spread(client, relid, &key.name, key.attnum, key.typid)?;
    let answer =
        serde_json::json!({"table": name, "distributed": true, "column": key.name, "colocate_with": colocate_with});
    Ok(Jsonb::from_text(&answer.to_string()))
}

/// The shard key of a journal entry of a `uuid` row (`key`, of table `relid`): on a distributed
/// Citus cluster a key of the default table on the node that holds the row, so that the entry is
/// written there, beside the row (the journal is distributed with the default table, and a
/// `uuid` key's hash would put it on any node; nothing reads a journal entry by its shard key).
/// None elsewhere: the entry keeps the key's hash.
pub fn journal_key(client: &SpiClient<'_>, relid: pg_sys::Oid, key: DatumWithOid<'_>) -> Option<i64> {
    if !is_distributed(client) {
        return None;
    }
    let group = group_of(client, relid, key)?;
    group_keys(client).get(&group).copied()
}
