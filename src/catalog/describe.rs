//! A tracked table's description and statements, from the system catalogs: its live columns,
//! primary key and write-timestamp column, checked against the tracking rule
//! (`inventory_sync_core::tracking`), and the statements that read and write it.

use std::cell::RefCell;
use std::collections::HashMap;

use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};

use super::{Table, Tracked};
use crate::pg::kept::{select_one, Kept, Row};
use crate::pg::lookup::qualified_name;
use crate::pg::{param, values};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::{validate, Column, Side, TsColumn};
use inventory_sync_core::SyncError;

/// The table's live columns and its primary key's columns, from the system catalogs.
pub(super) fn describe(client: &SpiClient<'_>, relid: pg_sys::Oid) -> (Vec<Column>, Vec<i16>) {
    let rows = client
        .select(
            "SELECT a.attnum, a.attname::pg_catalog.text, a.atttypid, a.atttypmod,
                    pg_catalog.format_type(a.atttypid, a.atttypmod),
                    a.attgenerated OPERATOR(pg_catalog.<>) '' OR a.attidentity OPERATOR(pg_catalog.=) 'a'
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            None,
            &[param::regclass(relid)],
        )
        .expect("inventory_sync: reading pg_attribute failed");
    let mut columns = Vec::new();
    for row in rows {
        let name: String = row.value(2).unwrap_or_default();
        let typid: pg_sys::Oid = row.value(3).unwrap_or(pg_sys::InvalidOid);
        columns.push(Column {
            attnum: row.value(1).unwrap_or(0),
            quoted: quote_identifier(&name),
            name,
            typid: typid.to_u32(),
            typmod: row.value(4).unwrap_or(-1),
            type_name: row.value(5).unwrap_or_default(),
            generated: row.value(6).unwrap_or(false),
            shape: values::shape_of(typid),
        });
    }
    let key: Vec<i16> = client
        .select(
            "SELECT pg_catalog.unnest(i.indkey::pg_catalog.int2[])
               FROM pg_catalog.pg_index i
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary",
            None,
            &[param::regclass(relid)],
        )
        .expect("inventory_sync: reading pg_index failed")
        .map(|row| row.value::<i16>(1).unwrap_or(0))
        .collect();
    (columns, key)
}

pub(super) fn load(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Tracked, SyncError> {
    let name = qualified_name(relid);
    let row = client
        .select(
            "SELECT key_attnum, ts_attnum, table_id FROM inventory_sync.tracked
              WHERE tbl OPERATOR(pg_catalog.=) $1",
            None,
            &[param::regclass(relid)],
        )
        .expect("inventory_sync: reading inventory_sync.tracked failed");
    if row.is_empty() {
        return Err(SyncError::NotTracked { table: name });
    }
    let row = row.first();
    let key_attnum: i16 = row.value(1).unwrap_or(0);
    let ts_attnum: i16 = row.value(2).unwrap_or(0);
    let id: i32 = row.value(3).expect("a tracked table has a table id");
    let (columns, primary_key) = describe(client, relid);
    let (key, ts) = validate(&name, &columns, &primary_key, TsColumn::Attnum(ts_attnum))
        .and_then(|(key, ts)| {
            if columns[key].attnum == key_attnum {
                Ok((key, ts))
            } else {
                Err(SyncError::TrackingBroken {
                    table: name.clone(),
                    why: "Its primary key is no longer the column it was tracked with.".into(),
                })
            }
        })
        .map_err(|e| match e {
            SyncError::TrackingBroken { .. } => e,
            other => {
                SyncError::TrackingBroken { table: name.clone(), why: format!("{}.", capitalized(&other.to_string())) }
            }
        })?;
    let (k, t) = (&columns[key], &columns[ts]);
    let typ = |oid: u32| PgOid::from_untagged(pg_sys::Oid::from(oid));
    let builtin = PgOid::from_untagged;
    let key_ts = vec![typ(k.typid), builtin(pg_sys::TIMESTAMPTZOID), builtin(pg_sys::TEXTOID)];
    let int8 = builtin(pg_sys::INT8OID);
    // The shard key of the row's change record: on the uuid and text sides the key itself (`sql`).
    let side = Side::of(k.typid);
    let shard_key = if side.keyed_by_key() { typ(k.typid) } else { int8 };
    let mut record_types = key_ts.clone();
    // … op, field clocks, position, shard key, the server's clock.
    record_types.extend([builtin(pg_sys::TEXTOID), builtin(pg_sys::JSONBOID), int8, shard_key, int8]);
    let key_shard = vec![typ(k.typid), shard_key];
    let mut tombstone_types = key_ts.clone();
    tombstone_types.push(shard_key);
    let server_row =
        sql::tracked_server_row(&name, id, &k.quoted, &quote_literal(&k.name), &quote_literal(&t.name), side);
    // On a Citus cluster, a table distributed by its key has its rows' advisory locks taken
    // where each row is (`sql::tracked_lock_routed`).
    let distributed = select_one(client, sql::HAS_CITUS, &[]) == Some(true)
        && select_one(client, sql::DISTRIBUTED_BY, &[relid.into(), k.name.as_str().into()]) == Some(true);
    let lock_routed = distributed.then(|| {
        let types = vec![builtin(pg_sys::INT4OID), builtin(pg_sys::INT4OID), typ(k.typid)];
        Kept::new(sql::tracked_lock_routed(&name, &k.quoted), types)
    });
    Ok(Tracked {
        lock_routed,
        lock: Kept::new(sql::tracked_lock(&name, &k.quoted, &t.quoted), vec![typ(k.typid)]),
        lock_for_merge: Kept::new(sql::tracked_lock_for_merge(&name, &k.quoted, &t.quoted), vec![typ(k.typid)]),
        record_clock: Kept::new(sql::tracked_record_clock(id, side), key_shard.clone()),
        version: Kept::new(sql::tracked_version(id, side), key_shard.clone()),
        tombstone_clock: Kept::new(sql::tracked_tombstone_clock(id, side), key_shard),
        delete_older: Kept::new(sql::tracked_delete_older(&name, &k.quoted, &t.quoted), key_ts[..2].to_vec()),
        delete_locked: Kept::new(sql::tracked_delete_locked(&name, &k.quoted), vec![typ(k.typid)]),
        tombstone: Kept::new(sql::tracked_tombstone(id, side), tombstone_types),
        record: Kept::new(sql::tracked_record(id, false, side), record_types.clone()),
        record_update: Kept::new(sql::tracked_record_update(id, side), record_types.clone()),
        record_with_clocks: Kept::new(sql::tracked_record(id, true, side), record_types),
        rows: Kept::new(
            sql::tracked_rows(&name, &k.quoted, &t.quoted, key_type_name(k.typid)),
            vec![PgOid::from_untagged(pg_sys::TEXTARRAYOID)],
        ),
        table: Table::new(name, relid, id, pg_sys::Oid::from(k.typid), &server_row),
        columns,
        key,
        ts,
        writes: RefCell::new(HashMap::new()),
    })
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The pg_catalog name of a supported key type.
fn key_type_name(typid: u32) -> &'static str {
    use inventory_sync_core::tracking::oid;
    match typid {
        oid::INT8 => "int8",
        oid::INT4 => "int4",
        oid::UUID => "uuid",
        _ => "text",
    }
}
