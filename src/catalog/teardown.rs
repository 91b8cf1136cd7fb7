//! `undistribute()`: the extension's tables taken back from a Citus cluster's workers onto its
//! coordinator, rows and all, as a single server has them (docs/DEVELOPMENT.md, "Taking it back").

use pgrx::pg_sys::Oid;
use pgrx::spi::SpiClient;

use super::cluster::{check_coordinator, cohort_start, give_era, run, set_locally, with_triggers_allowed};
use super::positions;
use crate::pg::extension;
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::Row;
use inventory_sync_core::sql;
use inventory_sync_core::SyncError;

/// Take the extension's tables back from the workers onto the coordinator, rows and all, as on a
/// single server (before `DROP EXTENSION`, or to leave Citus): the delegation and the position
/// triggers are undone, each table is taken back (`take_back`, with the `sql_drop` event trigger
/// resting: Citus drops the old copies), and the coordinator writes from then on in an era of a
/// cohort of its own, above every position stored: the nodes' eras are finished (no transaction
/// can still write in them: Citus waited for every writer of the tables), and pulls no longer ask
/// the nodes. Answers the tables taken back and the new era, or no tables when there was nothing
/// to take back.
pub fn undistribute(client: &mut SpiClient<'_>) -> Result<Jsonb, SyncError> {
    check_coordinator(client, "inventory_sync.undistribute() runs on the Citus coordinator")?;
    let tables: Vec<(Oid, String)> = client
        .select(sql::OWN_DISTRIBUTED, None, &[])
        .expect("inventory_sync: reading the distributed tables failed")
        .map(|row| (row.value(1).expect("an OID"), row.value(2).expect("a name")))
        .collect();
    if tables.is_empty() {
        return Ok(Jsonb::from_text(r#"{"tables": []}"#));
    }
    // Its statements' notices kept quiet, and the statements it writes naming everything with
    // its schema; both as they were after.
    let messages = set_locally(client, "client_min_messages", "warning");
    let search_path = set_locally(client, "search_path", "pg_catalog");
    with_triggers_allowed(client, |client| sql::undelegate().iter().for_each(|statement| run(client, statement)));
    run(client, sql::FORGETTING[0]);
    for (table, _) in &tables {
        take_back(client, *table);
    }
    run(client, sql::FORGETTING[1]);
    run(client, sql::PROBE_EMPTY);
    let (era, previous_end) = cohort_start(client);
    give_era(client, positions::check_era(era)?, era, positions::this_writer(), previous_end);
    set_locally(client, "client_min_messages", &messages);
    set_locally(client, "search_path", &search_path);
    let names: Vec<&str> = tables.iter().map(|(_, name)| name.as_str()).collect();
    Ok(Jsonb::from_text(&serde_json::json!({"cohort": era, "era": era, "tables": names}).to_string()))
}

/// One of the extension's tables taken back from the workers: out of the extension with its
/// sequences and the views on it, copied back by Citus, and in again, with what the copy loses
/// set again (the pg_dump marks, comments, the views' grants, restrictive policies).
fn take_back(client: &mut SpiClient<'_>, table: Oid) {
    let members: Vec<(Oid, String, String, Option<String>)> = client
        .select(sql::MEMBERS_OF_TABLE, None, &[table.into()])
        .expect("inventory_sync: reading the extension's members failed")
        .map(|row| {
            (row.value(1).expect("an OID"), row.value(2).expect("a name"), row.value(3).expect("a kind"), row.value(4))
        })
        .collect();
    // What Citus's copy loses, as the statements that set it again.
    let mut again: Vec<String> = Vec::new();
    for (member, ..) in &members {
        for statement in [sql::COMMENTS_OF, sql::GRANTS_OF] {
            let rows =
                client.select(statement, None, &[(*member).into()]).expect("inventory_sync: reading a table failed");
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
    for (_, name, kind, _) in &members {
        run(client, &format!("ALTER EXTENSION inventory_sync DROP {kind} {name}"));
    }
    client
        .update(sql::UNDISTRIBUTE_TABLE, None, &[table.into()])
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
