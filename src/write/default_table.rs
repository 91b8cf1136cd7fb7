//! The default table, `inventory_sync.inventory`: items with a bigint id and a jsonb `data`, each
//! write one `INSERT … ON CONFLICT … WHERE` statement (see `sql::default_upsert`).

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::datum::TimestampWithTimeZone;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;

use super::merging::{clock_micros, clock_of, timestamp, Fields};
use super::{applied, row_lock_hash, server_stamp, version_clock, Statements, Values, Write};
use crate::catalog::{positions, Table};
use crate::pg::jsonb::{Jsonb, Scalar};
use crate::pg::kept::{Kept, Row};
use crate::pg::lookup;
use inventory_sync_core::merge;
use inventory_sync_core::sql::{self, DEFAULT_FLOOR_KEY};
use inventory_sync_core::version::{Current, Expected};
use inventory_sync_core::SyncError;

/// The payload keys that are not fields of `data`.
const RESERVED: [&str; 2] = ["id", "updated_at"];

/// The default table's statements, built on first use in this backend.
pub struct DefaultTable {
    table: Table,
    /// The upserts (`sql::default_upsert`), by whether the payload holds a reserved key, which
    /// the upsert leaves out of `data`, and whether the write compares the row's version.
    upserts: [[Kept; 2]; 2],
    /// The fields a whole-row write set drop their own clocks.
    drop_clocks: Kept,
    /// The deletes, by whether the write compares the row's version.
    deletes: [Kept; 2],
    version_locked: Kept,
    /// The advisory lock of a row's server-ordered writers, taken where the row is
    /// (`sql::tracked_lock_routed`, which serves the default table as well).
    serialize: Kept,
    lock_for_merge: Kept,
    merge_update: Kept,
    merge_insert: Kept,
}

thread_local! {
    static DEFAULT: RefCell<Option<Rc<DefaultTable>>> = const { RefCell::new(None) };
}

/// The default table's statements; built again if the extension was dropped and created again
/// in this backend (the table's OID changed).
pub fn default_table() -> Rc<DefaultTable> {
    let oid = lookup::default_table_oid();
    DEFAULT.with(|cell| {
        let mut cell = cell.borrow_mut();
        match &*cell {
            Some(d) if d.table.oid == oid => d.clone(),
            _ => {
                let t = PgOid::from_untagged;
                let (int8, jsonb, ts, text) =
                    (t(pg_sys::INT8OID), t(pg_sys::JSONBOID), t(pg_sys::TIMESTAMPTZOID), t(pg_sys::TEXTOID));
                let upsert_types = vec![int8, jsonb, ts, text, int8, int8, int8];
                let upsert = |strip, cas| Kept::new(sql::default_upsert(strip, cas), upsert_types.clone());
                let delete = |cas| Kept::new(sql::default_delete(cas), vec![int8, ts, text, jsonb, int8, int8, int8]);
                let merge_types = vec![int8, jsonb, ts, text, jsonb, int8, int8];
                let d = Rc::new(DefaultTable {
                    table: Table::new(sql::DEFAULT_TABLE.to_string(), oid, 0, pg_sys::INT8OID, sql::DEFAULT_SERVER_ROW),
                    upserts: [[upsert(false, false), upsert(false, true)], [upsert(true, false), upsert(true, true)]],
                    drop_clocks: Kept::new(sql::DEFAULT_DROP_CLOCKS.into(), vec![int8, t(pg_sys::TEXTARRAYOID)]),
                    deletes: [delete(false), delete(true)],
                    version_locked: Kept::new(sql::DEFAULT_VERSION_LOCKED.into(), vec![int8]),
                    serialize: Kept::new(
                        sql::tracked_lock_routed(sql::DEFAULT_TABLE, "id"),
                        vec![t(pg_sys::INT4OID), t(pg_sys::INT4OID), int8],
                    ),
                    lock_for_merge: Kept::new(sql::DEFAULT_LOCK_FOR_MERGE.into(), vec![int8]),
                    merge_update: Kept::new(sql::default_merge_update(), merge_types.clone()),
                    merge_insert: Kept::new(sql::default_merge_insert(), merge_types),
                });
                *cell = Some(d.clone());
                d
            }
        }
    })
}

/// A default-table id given as text (by the tracked-table calls and sync_push).
pub fn default_id(text: &str) -> Result<i64, SyncError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| SyncError::BadChange(format!("id {text} is not a bigint, as the default table's ids are")))
}

impl Statements for DefaultTable {
    fn table(&self) -> &Table {
        &self.table
    }

    fn is_reserved(&self, key: &str) -> bool {
        RESERVED.contains(&key)
    }

    fn written_fields(&self, write: &Write<'_>, _values: &Values<'_>) -> Vec<String> {
        // Only the payload's keys are read: a write that merges nothing never parses its values
        // (which may nest deeper than a merge would read).
        let entries = write.payload.entries().expect("checked: an object");
        entries.into_keys().filter(|k| !self.is_reserved(k)).collect()
    }

    fn upsert(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        values: &Values<'_>,
    ) -> Result<Option<Jsonb>, SyncError> {
        let Values::Payload { reserved_keys, id } = values else {
            unreachable!("the default table's values are its payload")
        };
        let position = positions::for_write(client)?;
        let args = [
            write.key.bind(),
            write.payload.into(),
            write.client_ts.into(),
            write.client_id.as_deref().into(),
            position.into(),
            version_clock().into(),
            write.expected.map(Expected::param).into(),
        ];
        let upsert = &self.upserts[usize::from(*reserved_keys)][usize::from(write.expected.is_some())];
        let Some(row) = upsert.run_all(client, &args).next() else { return Ok(None) };
        let created = row.value::<bool>(1).expect("the upsert answers whether it created the row");
        let version = row.value::<i64>(3).expect("the upsert answers the row's version");
        if row.value::<bool>(2) == Some(true) {
            // The item has field clocks: those of the fields this write set go.
            let skip: &[&str] = if *reserved_keys { &RESERVED } else { &[] };
            let keys = write.payload.keys_param(client, skip);
            self.drop_clocks.run_all(client, &[write.key.bind(), keys.bind()]);
        }
        Ok(Some(applied(Scalar::Int(*id), write.client_ts, Some(created), version)))
    }

    fn delete(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<Option<Jsonb>, SyncError> {
        let floor = Jsonb::from_object(&merge::floor_only(DEFAULT_FLOOR_KEY, &clock_of(write)));
        let position = positions::for_write(client)?;
        let args = [
            write.key.bind(),
            write.client_ts.into(),
            write.client_id.as_deref().into(),
            floor.into(),
            position.into(),
            version_clock().into(),
            write.expected.map(Expected::param).into(),
        ];
        let delete = &self.deletes[usize::from(write.expected.is_some())];
        Ok(delete.run::<i64>(client, &args).map(|version| applied(write.key_json(), write.client_ts, None, version)))
    }

    /// After the row's timestamp, read once the row's server-ordered writers are serialized by an
    /// advisory lock (table id 0), also for a row that does not exist yet; the read is a
    /// statement of its own, so it sees a writer that committed while this one waited.
    fn stamp(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<TimestampWithTimeZone, SyncError> {
        self.serialize.run_all(client, &[0i32.into(), row_lock_hash(&write.row_id).into(), write.key.bind()]);
        let stored = self.lock_for_merge.run_all(client, &[write.key.bind()]).next().and_then(|row| row.value(2));
        server_stamp(stored)
    }

    /// The row's version, locked: a row that exists when the write's statement runs is then the
    /// one compared here; one inserted concurrently meets the statement's own comparison.
    fn current(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Current {
        self.version_locked.run::<i64>(client, &[write.key.bind()]).map_or(Current::Absent, Current::At)
    }

    fn read_for_merge(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        _fields: &Fields,
    ) -> Result<Option<merge::Stored>, SyncError> {
        let mut stored = None;
        for row in self.lock_for_merge.run_all(client, &[write.key.bind()]) {
            let mut clocks = Jsonb::object_or_empty(row.value::<Jsonb>(4));
            let floor = merge::take_floor(&mut clocks, DEFAULT_FLOOR_KEY);
            stored = Some(merge::Stored {
                fields: Jsonb::object_or_empty(row.value::<Jsonb>(1)),
                row: merge::Clock {
                    ts: clock_micros(row.value::<TimestampWithTimeZone>(2)),
                    by: row.value::<String>(3),
                },
                clocks,
                deleted: row.value::<bool>(5).unwrap_or(false),
                implicit_clocks: true,
                floor,
            });
        }
        Ok(stored)
    }

    fn write_merged(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        m: &merge::Merge,
        stored: Option<&merge::Stored>,
    ) -> Result<Option<Jsonb>, SyncError> {
        let position = positions::for_write(client)?;
        let args = [
            write.key.bind(),
            Jsonb::from_object(&m.fields).into(),
            timestamp(m.row.ts).into(),
            m.row.by.as_deref().into(),
            Jsonb::from_object(&merge::clocks_with_floor(m, DEFAULT_FLOOR_KEY)).into(),
            position.into(),
            version_clock().into(),
        ];
        // An insert that meets a row inserted concurrently writes nothing: the loop merges again.
        let statement = if stored.is_some() { &self.merge_update } else { &self.merge_insert };
        let created = stored.is_none();
        Ok(statement
            .run::<i64>(client, &args)
            .map(|version| applied(write.key_json(), timestamp(m.row.ts), Some(created), version)))
    }
}
