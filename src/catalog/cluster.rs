//! `distribute()`: the extension spread over a Citus cluster (docs/SCALING.md). The extension's
//! script runs on every node and cannot do this itself: Citus distributes tables from the
//! coordinator, once the nodes are there.
//!
//! Each node writes with its own transaction ids, so each gets an era of its own, all of one
//! cohort (`catalog::positions`). Running it again (after adding a node) gives every node a new
//! era of a new cohort: only transactions that began before still write in a node's old era, and
//! pulls walk it up to that node's horizon while the node is there.
//!
//! It also replicates the catalogs and delegates the default table's calls to the node that holds
//! the item (`sql::DISTRIBUTE`, `sql::DELEGATE`); `announce` tells every node of a change of a
//! replicated table.

use std::ffi::CStr;

use pgrx::spi::SpiClient;

use super::positions;
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::{select_one, Row};
use crate::pg::{extension, lookup};
use inventory_sync_core::sql;
use inventory_sync_core::SyncError;

fn yes(client: &SpiClient<'_>, statement: &str) -> bool {
    select_one(client, statement, &[]) == Some(true)
}

/// That this is a Citus coordinator, where the current user owns the extension's tables.
fn check_coordinator(client: &SpiClient<'_>, function: &'static str) -> Result<(), SyncError> {
    if !yes(client, sql::HAS_CITUS) {
        return Err(SyncError::NotACluster("extension \"citus\" is not installed in this database"));
    }
    if !yes(client, sql::IS_COORDINATOR) {
        return Err(SyncError::NotACluster(function));
    }
    if !lookup::is_owner(lookup::default_table_oid()) {
        return Err(SyncError::NotOwner { table: "inventory_sync.inventory".into() });
    }
    Ok(())
}

/// Spread the tables (once) and give every node an era; answers the cohort and each node's era.
pub fn distribute(client: &mut SpiClient<'_>) -> Result<Jsonb, SyncError> {
    check_coordinator(client, "inventory_sync.distribute() runs on the Citus coordinator")?;
    if !yes(client, sql::IS_DISTRIBUTED) {
        for statement in sql::DISTRIBUTE {
            client.update(statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
        }
    }
    // A row on every shard of the probe, through which pulls ask the nodes for their horizons.
    client.update(sql::PROBE_FILL, None, &[]).expect("inventory_sync: filling the node probe failed");
    let tracked: Vec<pgrx::pg_sys::Oid> = client
        .select(sql::FEED_TABLES, None, &[])
        .expect("inventory_sync: reading the tracked tables failed")
        .map(|row| row.value(2).expect("an OID"))
        .collect();
    for relid in tracked {
        check_numbered_alike(client, relid, &lookup::qualified_name(relid))?;
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
    for (i, (id, (system, database))) in nodes.into_iter().enumerate() {
        let era = positions::check_era(cohort + i as i32)?;
        let args =
            [era.into(), cohort.into(), system.into(), pgrx::pg_sys::Oid::from(database).into(), previous_end.into()];
        client.update(sql::ERA_GIVE, None, &args).expect("inventory_sync: recording an era failed");
        eras.push(serde_json::json!({"node": id, "era": era}));
    }
    stamp_positions(client);
    positions::answers_of_all_nodes(client, sql::JOURNAL_ID_RANGES, &[])?;
    announce(client, c"eras");
    announce(client, c"tracked");
    announce(client, c"field_policies");
    for statement in sql::DELEGATE {
        client.update(statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
    }
    delegate_uuid_calls(client);
    Ok(Jsonb::from_text(&serde_json::json!({"cohort": cohort, "eras": eras}).to_string()))
}

/// The next cohort's number (its first era's) and the highest position stored, with the eras
/// locked against other givers until the transaction ends.
fn cohort_start(client: &mut SpiClient<'_>) -> (i32, i64) {
    client.update(sql::ERAS_LOCK, None, &[]).expect("inventory_sync: locking the eras failed");
    let row = client.select(sql::COHORT_START, None, &[]).expect("inventory_sync: reading the positions failed");
    let row = row.first();
    (row.value(2).expect("a next era"), row.value(1).expect("a highest position"))
}

/// Take the extension's tables back from the workers onto the coordinator, rows and all, as on a
/// single server (before `DROP EXTENSION`, or to leave Citus): the delegation and the position
/// triggers are undone, each table is taken out of the extension, copied back by Citus
/// (`undistribute_table`, which refuses a table of an extension) and put back, with its pg_dump
/// mark and its comments (which Citus's copy loses), and the coordinator writes from then on in
/// an era of a cohort of its own, above every position stored: the nodes' eras are finished (no
/// transaction can still write in them: Citus waited for every writer of the tables), and pulls
/// no longer ask the nodes. Answers the tables taken back and the new era, or no tables when
/// there was nothing to take back.
pub fn undistribute(client: &mut SpiClient<'_>) -> Result<Jsonb, SyncError> {
    check_coordinator(client, "inventory_sync.undistribute() runs on the Citus coordinator")?;
    let tables: Vec<(pgrx::pg_sys::Oid, String)> = client
        .select(sql::OWN_DISTRIBUTED, None, &[])
        .expect("inventory_sync: reading the distributed tables failed")
        .map(|row| (row.value(1).expect("an OID"), row.value(2).expect("a name")))
        .collect();
    if tables.is_empty() {
        return Ok(Jsonb::from_text(r#"{"tables": []}"#));
    }
    let quiet: String = select_one(client, sql::QUIET, &["warning".into(), "pg_catalog".into()]).expect("settings");
    let triggers: String = select_one(client, sql::STAMP_ALLOW, &["on".into()]).expect("a setting");
    for statement in sql::UNDELEGATE.iter().chain(&sql::FORGETTING[..1]) {
        client.update(*statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
    }
    select_one::<String>(client, sql::STAMP_ALLOW, &[triggers.as_str().into()]);
    for (table, _) in &tables {
        let members: Vec<(pgrx::pg_sys::Oid, String, String, Option<String>)> = client
            .select(sql::MEMBERS_OF_TABLE, None, &[(*table).into()])
            .expect("inventory_sync: reading the extension's members failed")
            .map(|row| {
                (
                    row.value(1).expect("an OID"),
                    row.value(2).expect("a name"),
                    row.value(3).expect("a kind"),
                    row.value(4),
                )
            })
            .collect();
        // What Citus's copy loses, as the statements that set it again.
        let mut again: Vec<String> = Vec::new();
        for (member, ..) in &members {
            for statement in [sql::COMMENTS_OF, sql::GRANTS_OF] {
                let rows = client
                    .select(statement, None, &[(*member).into()])
                    .expect("inventory_sync: reading a table failed");
                again.extend(rows.map(|row| row.value::<String>(1).expect("a statement")));
            }
            let rows = client
                .select(sql::POLICIES_OF, None, &[(*member).into()])
                .expect("inventory_sync: reading policies failed");
            for row in rows {
                again.push(row.value::<String>(1).expect("a statement"));
                again.push(row.value::<String>(2).expect("a statement"));
            }
        }
        let run = |client: &mut SpiClient<'_>, statement: &str| {
            client.update(statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
        };
        for (_, name, kind, _) in &members {
            run(client, &format!("ALTER EXTENSION inventory_sync DROP {kind} {name}"));
        }
        client
            .update(sql::UNDISTRIBUTE_TABLE, None, &[(*table).into()])
            .expect("inventory_sync: taking a table back from the workers failed");
        for (_, name, kind, dumped) in &members {
            run(client, &format!("ALTER EXTENSION inventory_sync ADD {kind} {name}"));
            if let Some(condition) = dumped {
                extension::config_dump(client, name, condition);
            }
        }
        for statement in &again {
            run(client, statement);
        }
    }
    client.update(sql::FORGETTING[1], None, &[]).expect("inventory_sync: enabling the event trigger failed");
    client.update(sql::PROBE_EMPTY, None, &[]).expect("inventory_sync: emptying the probe failed");
    let (era, previous_end) = cohort_start(client);
    let era = positions::check_era(era)?;
    let (system, database) = positions::this_writer();
    let args = [era.into(), era.into(), system.into(), pgrx::pg_sys::Oid::from(database).into(), previous_end.into()];
    client.update(sql::ERA_GIVE, None, &args).expect("inventory_sync: recording an era failed");
    let (messages, search_path) = quiet.split_once(';').expect("two settings");
    select_one::<String>(client, sql::QUIET, &[messages.into(), search_path.into()]);
    let names: Vec<&str> = tables.iter().map(|(_, name)| name.as_str()).collect();
    Ok(Jsonb::from_text(&serde_json::json!({"cohort": era, "era": era, "tables": names}).to_string()))
}

/// Every node stamps the positions of the feed rows it stores (`stamp_position`), also of writes
/// run from another node: a write's rows become visible on each node when that node commits its
/// part, after the node that ran it may have committed (two-phase commit), so only the storing
/// node's transaction ids order them against its horizon.
fn stamp_positions(client: &mut SpiClient<'_>) {
    let before: String = select_one(client, sql::STAMP_ALLOW, &["on".into()]).expect("a setting");
    for statement in sql::STAMP_POSITIONS {
        client.update(statement, None, &[]).unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
    }
    select_one::<String>(client, sql::STAMP_ALLOW, &[before.as_str().into()]);
}

/// On a Citus coordinator, for a distributed table: that every node numbers its columns as this
/// one does. The catalogs (on every node alike) name a tracked table's key and timestamp columns
/// by number, and Citus makes the workers' copies of a table without the columns dropped before
/// it was distributed.
pub fn check_numbered_alike(client: &SpiClient<'_>, relid: pgrx::pg_sys::Oid, name: &str) -> Result<(), SyncError> {
    if !yes(client, sql::HAS_CITUS) || !yes(client, sql::IS_COORDINATOR) {
        return Ok(());
    }
    if select_one(client, sql::IS_REPLICATED, &[relid.into()]) != Some(true) {
        return Ok(());
    }
    let here: String = select_one(client, sql::COLUMN_NUMBERS, &[relid.into()]).unwrap_or_default();
    let regclass = lookup::qualified_name(relid);
    for (node, there) in positions::answers_of_all_nodes(client, sql::COLUMN_NUMBERS_ON_ALL_NODES, &[regclass.into()])?
    {
        if there != here {
            return Err(SyncError::NumberedOtherwise { table: name.to_string(), node });
        }
    }
    Ok(())
}

/// On a Citus coordinator where `distribute()` ran: the calls that take a uuid key delegated by
/// it, colocated with the first tracked table distributed by a uuid key, once there is one (from
/// `distribute()` and `track()`). Tracked tables of one key type share a colocation group unless
/// told otherwise, so each call runs whole on the node that holds its row.
pub fn delegate_uuid_calls(client: &mut SpiClient<'_>) {
    if !yes(client, sql::HAS_CITUS) || !yes(client, sql::IS_COORDINATOR) || !yes(client, sql::IS_DISTRIBUTED) {
        return;
    }
    let Some(anchor) = select_one::<String>(client, sql::UUID_ANCHOR, &[]) else { return };
    for statement in sql::DELEGATE_UUID {
        client
            .update(statement, None, &[anchor.as_str().into()])
            .unwrap_or_else(|e| panic!("inventory_sync: {statement} failed: {e}"));
    }
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
