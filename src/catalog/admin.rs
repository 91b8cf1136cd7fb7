//! `track`, `untrack` and `set_policy`: putting tables under sync and setting how their fields
//! merge. Only a table's owner may.

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use super::describe;
use crate::pg::kept::Row;
use crate::pg::lookup::{self, qualified_name};
use crate::pg::{param, values, xact};
use inventory_sync_core::merge::Policy;
use inventory_sync_core::rules::{self, Ordering};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::{validate, Side, TsColumn};
use inventory_sync_core::SyncError;

/// Checks that the current user may track or untrack `relid`: a table, not ours, owned by them.
fn check_trackable(relid: pg_sys::Oid, name: &str) -> Result<(), SyncError> {
    let rel = lookup::relation(relid);
    if !rel.is_table {
        return Err(SyncError::NotATable { table: name.into() });
    }
    // A temporary table vanishes with its session without the drop event that would untrack it,
    // leaving tracking rows for an OID a later table may reuse; and no device syncs with it.
    if rel.is_temporary {
        return Err(SyncError::TemporaryTable { table: name.into() });
    }
    if rel.schema.as_deref() == Some("inventory_sync") {
        return Err(SyncError::OwnTable { table: name.into() });
    }
    if !rel.owned {
        return Err(SyncError::NotOwner { table: name.into() });
    }
    Ok(())
}

/// Put `relid` under sync with `ts_column` as its write timestamp (again: change the column).
pub fn track(client: &mut SpiClient<'_>, relid: pg_sys::Oid, ts_column: &str) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    check_trackable(relid, &name)?;
    let (columns, primary_key) = describe::describe(client, relid);
    let (key, ts) = validate(&name, &columns, &primary_key, TsColumn::Name(ts_column))?;
    super::cluster::check_on_every_node(client, relid, columns[key].attnum, columns[key].typid)?;
    client
        .update(
            "INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum) VALUES ($1, $2, $3)
             ON CONFLICT (tbl) DO UPDATE
                SET key_attnum = excluded.key_attnum, ts_attnum = excluded.ts_attnum",
            None,
            &[param::regclass(relid), columns[key].attnum.into(), columns[ts].attnum.into()],
        )
        .expect("inventory_sync: writing inventory_sync.tracked failed");
    // Every backend's cached description of the table is dropped when this commits.
    xact::invalidate(relid);
    super::cluster::announce(client, c"tracked");
    Ok(())
}

/// Take `relid` out of sync: its feed entries and tombstones go too (no pull hands them out any
/// more); its journal rows and policies stay.
pub fn untrack(client: &mut SpiClient<'_>, relid: pg_sys::Oid) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    check_trackable(relid, &name)?;
    let deleted = client
        .update(
            "DELETE FROM inventory_sync.tracked WHERE tbl OPERATOR(pg_catalog.=) $1 RETURNING table_id",
            None,
            &[param::regclass(relid)],
        )
        .expect("inventory_sync: writing inventory_sync.tracked failed");
    let Some(table_id) = deleted.into_iter().next().and_then(|row| row.value::<i32>(1)) else {
        return Err(SyncError::NotTracked { table: name });
    };
    super::as_owner_of(c"changes", || {
        for side in Side::ALL {
            let forget = format!("DELETE FROM {} c WHERE c.table_id OPERATOR(pg_catalog.=) $1", side.changes());
            client
                .update(&forget, None, &[table_id.into()])
                .expect("inventory_sync: forgetting the feed of an untracked table failed");
        }
    });
    xact::invalidate(relid);
    super::cluster::announce(client, c"tracked");
    Ok(())
}

/// Set the merge policy of `field` of the default table (a key of `data`) or of a tracked table
/// (a column). Only the table's owner may.
pub fn set_policy(
    client: &mut SpiClient<'_>,
    relid: pg_sys::Oid,
    field: &str,
    policy: Policy,
) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    if !lookup::is_owner(relid) {
        return Err(SyncError::NotOwner { table: name });
    }
    if relid != lookup::default_table_oid() {
        let tracked = super::get(client, relid)?;
        let pos =
            tracked.column(field).ok_or_else(|| SyncError::UnknownKey { key: field.into(), table: name.clone() })?;
        let col = &tracked.columns[pos];
        if pos == tracked.key || pos == tracked.ts {
            return Err(SyncError::NoPolicyHere { field: field.into(), table: name });
        }
        if col.generated {
            return Err(SyncError::GeneratedKey { key: field.into(), table: name });
        }
        if policy == Policy::Delta && !values::is_numeric(pg_sys::Oid::from(col.typid)) {
            return Err(SyncError::DeltaNeedsNumber { field: field.into(), typ: col.type_name.clone() });
        }
    } else if field == "id" || field == "updated_at" {
        return Err(SyncError::NoPolicyHere { field: field.into(), table: name });
    }
    let args = [param::regclass(relid), field.into()];
    let result = match policy {
        Policy::Lww => client.update(sql::CLEAR_POLICY, None, &args),
        other => {
            let [a, b] = args;
            client.update(sql::SET_POLICY, None, &[a, b, other.as_str().into()])
        }
    };
    result.expect("inventory_sync: writing field policies failed");
    // Every backend reloads the policies when this commits.
    xact::invalidate(relid);
    super::cluster::announce(client, c"field_policies");
    Ok(())
}

/// Set who orders the writes of the default table or a tracked table: the devices' clocks (the
/// default) or the server. Recorded in `field_policies` as the policy `rules::SERVER_CLOCK` of
/// the table's write-timestamp column, so it travels as the policies do (backups, Citus, a
/// dropped table). Only the table's owner may.
pub fn set_ordering(client: &mut SpiClient<'_>, relid: pg_sys::Oid, ordering: Ordering) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    if !lookup::is_owner(relid) {
        return Err(SyncError::NotOwner { table: name });
    }
    let ts_column = if relid == lookup::default_table_oid() {
        "updated_at".to_string()
    } else {
        let tracked = super::get(client, relid)?;
        tracked.columns[tracked.ts].name.clone()
    };
    let cleared = client.update(sql::CLEAR_SERVER_CLOCK, None, &[param::regclass(relid)]);
    cleared.expect("inventory_sync: writing field policies failed");
    if ordering == Ordering::Server {
        let args = [param::regclass(relid), ts_column.as_str().into(), rules::SERVER_CLOCK.into()];
        client.update(sql::SET_POLICY, None, &args).expect("inventory_sync: writing field policies failed");
    }
    xact::invalidate(relid);
    super::cluster::announce(client, c"field_policies");
    Ok(())
}
