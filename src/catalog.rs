//! Tracked tables: validation (`track`), the catalog `inventory_sync.tracked`, and a per-backend
//! cache of each table's description and statements.
//!
//! The cache follows PostgreSQL's own rule for derived state: a relcache invalidation callback
//! marks a table's entry stale whenever the table changes (ALTER TABLE in any backend, and
//! track/untrack, which send one), and the next call rebuilds it after locking the table, which
//! is when pending invalidations are processed. So a call never uses a description older than
//! the table it writes.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::rc::Rc;

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::{quote_identifier, quote_literal, quote_qualified_identifier, SpiClient};

use crate::convert::Shape;
use crate::merge::{self, Policy};
use crate::engine::{Param, Table, Write, MAX_ROUNDS};
use crate::error::SyncError;
use crate::sql;
use crate::storage::Kept;
use crate::types::Jsonb;

/// Key types a tracked table may have.
const KEY_TYPES: [pg_sys::Oid; 4] =
    [pg_sys::INT8OID, pg_sys::INT4OID, pg_sys::UUIDOID, pg_sys::TEXTOID];

/// Distinct payload key sets whose upsert plans are kept per table; beyond it the table's plans
/// are dropped and rebuilt as needed. Clients send a handful of shapes (whole record, a few
/// fields), so this bound is about misuse, not normal traffic.
const MAX_PLANS_PER_TABLE: usize = 256;

#[derive(Debug, Clone)]
pub struct Column {
    pub attnum: i16,
    pub name: String,
    pub quoted: String,
    pub typid: pg_sys::Oid,
    pub typmod: i32,
    pub type_name: String,
    /// GENERATED ALWAYS AS (…) STORED, or GENERATED ALWAYS AS IDENTITY: cannot be written.
    pub generated: bool,
    pub shape: Shape,
}

/// How the write-timestamp column is named: by the caller of track(), or by the catalog.
#[derive(Debug, Clone, Copy)]
pub enum TsColumn<'a> {
    Name(&'a str),
    Attnum(i16),
}

/// Check that a table can be synced: a single-column primary key of a supported type and a
/// timestamptz write-timestamp column that is neither the key nor generated. Returns the
/// positions in `columns` of the key and the timestamp column. Plain Rust: unit-tested.
pub fn validate(
    table: &str,
    columns: &[Column],
    primary_key: &[i16],
    ts: TsColumn<'_>,
) -> Result<(usize, usize), SyncError> {
    let [key_attnum] = primary_key else {
        return Err(SyncError::NoSingleKey { table: table.into(), columns: primary_key.len() });
    };
    let key = columns
        .iter()
        .position(|c| c.attnum == *key_attnum)
        .ok_or(SyncError::NoSingleKey { table: table.into(), columns: 0 })?;
    if !KEY_TYPES.contains(&columns[key].typid) {
        return Err(SyncError::KeyType {
            column: columns[key].name.clone(),
            table: table.into(),
            typ: columns[key].type_name.clone(),
        });
    }
    let ts_pos = match ts {
        TsColumn::Name(name) => columns.iter().position(|c| c.name == name).ok_or_else(|| {
            SyncError::NoTimestampColumn { column: name.into(), table: table.into() }
        })?,
        TsColumn::Attnum(attnum) => {
            columns.iter().position(|c| c.attnum == attnum).ok_or_else(|| {
                SyncError::TrackingBroken {
                    table: table.into(),
                    why: "Its write-timestamp column was dropped.".into(),
                }
            })?
        }
    };
    let col = &columns[ts_pos];
    let bad = |why: String| {
        Err(SyncError::BadTimestampColumn { column: col.name.clone(), table: table.into(), why })
    };
    if col.typid != pg_sys::TIMESTAMPTZOID {
        return bad(format!(
            "It is of type {}; the write timestamp must be timestamp with time zone.",
            col.type_name
        ));
    }
    if col.generated {
        return bad("It is a generated column.".into());
    }
    Ok((key, ts_pos))
}


/// The statements that write one set of columns.
pub struct Writes {
    update: Kept,
    insert: Kept,
    merge_update: Kept,
}

/// A tracked table as one backend knows it: its columns, key, timestamp and statements.
pub struct Tracked {
    pub table: Table,
    pub columns: Vec<Column>,
    pub key: usize,
    pub ts: usize,
    lock: Kept,
    lock_for_merge: Kept,
    tombstone_clock: Kept,
    delete: Kept,
    tombstone: Kept,
    record: Kept,
    record_with_clocks: Kept,
    rows: Kept,
    writes: RefCell<HashMap<Vec<usize>, Rc<Writes>>>,
}

impl Tracked {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The kept statements that write `columns` (positions, ascending).
    fn writes_for(&self, columns: &[usize]) -> Rc<Writes> {
        let mut plans = self.writes.borrow_mut();
        if let Some(writes) = plans.get(columns) {
            return writes.clone();
        }
        if plans.len() >= MAX_PLANS_PER_TABLE {
            plans.clear();
        }
        let (table, key, ts) =
            (&self.table.name, &self.columns[self.key].quoted, &self.columns[self.ts].quoted);
        let names: Vec<&str> = columns.iter().map(|&i| self.columns[i].quoted.as_str()).collect();
        let mut types = vec![
            PgOid::from_untagged(self.columns[self.key].typid),
            PgOid::from_untagged(pg_sys::TIMESTAMPTZOID),
            PgOid::from_untagged(pg_sys::TEXTOID),
        ];
        types.extend(columns.iter().map(|&i| PgOid::from_untagged(self.columns[i].typid)));
        let oid = self.table.oid.to_u32();
        let writes = Rc::new(Writes {
            update: Kept::new(sql::tracked_update(table, oid, key, ts, &names), types.clone()),
            merge_update: Kept::new(sql::tracked_merge_update(table, key, ts, &names), types.clone()),
            insert: Kept::new(sql::tracked_insert(table, key, ts, &names), types),
        });
        plans.insert(columns.to_vec(), writes.clone());
        writes
    }

    /// Rows by key (canonical text), as the caller may see them: key text → (row as JSON text,
    /// its write timestamp as JSON text), unparsed.
    pub fn rows_by_key(
        &self,
        client: &mut SpiClient<'_>,
        keys: Vec<String>,
    ) -> HashMap<String, (Box<serde_json::value::RawValue>, Box<serde_json::value::RawValue>)> {
        let mut out = HashMap::new();
        let table = self.rows.select_all(client, &[keys.into()]);
        for row in table {
            let key: String = row.get(1).ok().flatten().unwrap_or_default();
            let data: Option<Jsonb> = row.get(2).ok().flatten();
            let ts: Option<Jsonb> = row.get(3).ok().flatten();
            if let (Some(data), Some(ts)) = (data, ts) {
                out.insert(key, (data.to_raw(), ts.to_raw()));
            }
        }
        out
    }

    /// Serialize the writes of this function to one row: a transaction-level advisory lock on
    /// (table, key), so that an upsert and a delete of a row that does not exist yet cannot both
    /// go ahead. Collisions of the 32-bit key hash only serialize unrelated rows a little.
    fn lock_key(&self, row_id: &str) {
        let hash = row_id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
        // SAFETY: pg_advisory_xact_lock(int4, int4) with two int4 datums.
        unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(
                pg_sys::pg_advisory_xact_lock_int4,
                &[Some(pg_sys::Datum::from(self.table.oid.to_u32() as i32)), Some(pg_sys::Datum::from(hash as i32))],
            );
        }
    }

    /// Record the row's latest change: stamped `ts` (the row's timestamp), with `clocks` as its
    /// field clocks (None: keep them, less those of `written`).
    fn record(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write,
        ts: TimestampWithTimeZone,
        clocks: Option<Jsonb>,
        written: &[usize],
    ) -> Jsonb {
        self.record_by(client, write, ts, write.client_id.as_deref(), clocks, written)
    }

    fn record_by(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write,
        ts: TimestampWithTimeZone,
        by: Option<&str>,
        clocks: Option<Jsonb>,
        written: &[usize],
    ) -> Jsonb {
        let names: Vec<String> = written.iter().map(|&i| self.columns[i].name.clone()).collect();
        let args = [
            write.key.bind(),
            ts.into(),
            by.into(),
            write.op.as_str().into(),
            clocks.into(),
            names.into(),
            ts.into_inner().into(),
        ];
        let record = if clocks.is_some() { &self.record_with_clocks } else { &self.record };
        as_feed_owner(|| record.run::<Jsonb>(client, &args)).expect("inventory_sync: recording a change answered no row")
    }

    /// Whether row-level security applies to the current user on this table (it depends on the
    /// user, so it is asked on every call).
    fn rls(&self) -> bool {
        // SAFETY: catalog lookups for the table and the current user.
        let result = unsafe { pg_sys::check_enable_rls(self.table.oid, pg_sys::InvalidOid, true) };
        result == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    }

    /// Apply an upsert of `columns` (positions, ascending) with `args` (`$1` key, `$2` client_ts,
    /// then the columns' values): update the row if it is not newer; else lock it and look; if
    /// there is none, let a newer tombstone win, else insert (an insert of a partial row fails
    /// its NOT NULL checks even when the row exists, so it comes last). None: the stored row or
    /// tombstone is newer (and now locked by us), or the caller cannot see the row under
    /// row-level security.
    pub fn upsert(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write,
        values: &[(usize, Param)],
    ) -> Result<Option<Jsonb>, SyncError> {
        self.lock_key(&write.row_id);
        let columns: Vec<usize> = values.iter().map(|(pos, _)| *pos).collect();
        let writes = self.writes_for(&columns);
        let mut args = Vec::with_capacity(values.len() + 3);
        args.push(write.key.bind());
        args.push(write.client_ts.into());
        args.push(write.client_id.as_deref().into());
        args.extend(values.iter().map(|(_, p)| p.bind()));
        let mut unseen = 0;
        for _ in 0..MAX_ROUNDS {
            if let Some(answer) = writes.update.run::<Jsonb>(client, &args) {
                self.record(client, write, write.client_ts, None, &columns);
                return Ok(Some(answer));
            }
            match self.lock.run::<bool>(client, &args[..3]) {
                // Newer: a conflict, decided against the version we now hold locked.
                Some(false) => return Ok(None),
                // Committed after the update's snapshot and not newer: locked now, so the update
                // applies in the next round.
                Some(true) => continue,
                None => {}
            }
            if as_feed_owner(|| self.tombstone.run::<bool>(client, &args[..3])) == Some(false) {
                return Ok(None);
            }
            if let Some(answer) = writes.insert.run::<Jsonb>(client, &args) {
                self.record(client, write, write.client_ts, None, &columns);
                return Ok(Some(answer));
            }
            // The insert met a row the lock did not see: inserted outside sync functions since
            // (the next round sees it), or hidden from the caller by row-level security (every
            // round misses).
            unseen += 1;
            if unseen == 2 {
                return Ok(None);
            }
        }
        Err(SyncError::Unsettled { table: self.table.name.clone(), rounds: MAX_ROUNDS })
    }

    /// Apply an upsert whose payload touches fields with merge policies: lock the row, merge
    /// field by field (see `merge`), write the result, and answer `applied`, `merged` or
    /// `conflict` (journaling what lost).
    pub fn merge(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write,
        fields: &serde_json::Map<String, serde_json::Value>,
        base: Option<&serde_json::Map<String, serde_json::Value>>,
        policies: &Policies,
    ) -> Result<Jsonb, SyncError> {
        self.lock_key(&write.row_id);
        let (key_name, ts_name) = (&self.columns[self.key].name, &self.columns[self.ts].name);
        let mut unseen = 0;
        for _ in 0..MAX_ROUNDS {
            let mut stored = None;
            for row in self.lock_for_merge.run_all(client, &[write.key.bind()]) {
                // Only the columns this write sets are read: the others are not rewritten, and
                // may hold values nested deeper than a JSON parser in Rust reads.
                let entries = row.get::<Jsonb>(1).ok().flatten().and_then(Jsonb::entries).unwrap_or_default();
                let mut row_fields = serde_json::Map::new();
                for (name, raw) in entries {
                    if fields.contains_key(&name) && name != *key_name && name != *ts_name {
                        let value = serde_json::from_str(raw.get()).map_err(|_| SyncError::NestedTooDeep)?;
                        row_fields.insert(name, value);
                    }
                }
                let ts = crate::engine::clock_micros(row.get::<TimestampWithTimeZone>(2).ok().flatten());
                // The floor is kept under the timestamp column's name, which no payload key is.
                let mut clocks = Jsonb::object_or_empty(row.get::<Jsonb>(4).ok().flatten());
                let floor = merge::take_floor(&mut clocks, ts_name);
                stored = Some(merge::Stored {
                    fields: row_fields,
                    row: merge::Clock { ts, by: row.get::<String>(3).ok().flatten() },
                    clocks,
                    deleted: false,
                    implicit_clocks: false,
                    floor,
                });
            }
            if stored.is_none() {
                for row in self.tombstone_clock.run_all(client, &[write.key.bind()]) {
                    let ts = crate::engine::clock_micros(row.get::<TimestampWithTimeZone>(1).ok().flatten());
                    stored = Some(merge::Stored {
                        fields: serde_json::Map::new(),
                        row: merge::Clock { ts, by: row.get::<String>(2).ok().flatten() },
                        clocks: serde_json::Map::new(),
                        deleted: true,
                        implicit_clocks: false,
                        floor: None,
                    });
                }
            }
            let m = crate::engine::merge_write(stored.as_ref(), write, fields, base, policies)?;
            if m.status == merge::Status::Conflict {
                return Ok(crate::engine::finish_merge(client, &self.table, write, fields, &m, None));
            }
            let mut values = Vec::with_capacity(m.applied.len());
            for name in &m.applied {
                let pos = self.column(name).expect("payload keys were checked against the columns");
                let col = &self.columns[pos];
                let text = crate::convert::input_text(&m.fields[name], col.shape);
                let datum = crate::convert::to_datum(text.as_deref(), col.typid, col.typmod, &col.name, &self.table.name)?;
                values.push((pos, Param { datum, oid: col.typid }));
            }
            values.sort_by_key(|(pos, _)| *pos);
            let columns: Vec<usize> = values.iter().map(|(pos, _)| *pos).collect();
            let writes = self.writes_for(&columns);
            let row_ts = crate::engine::timestamp(m.row.ts);
            let mut args = vec![write.key.bind(), row_ts.into(), m.row.by.as_deref().into()];
            args.extend(values.iter().map(|(_, p)| p.bind()));
            let existing = stored.as_ref().is_some_and(|s| !s.deleted);
            let written = if existing {
                writes.merge_update.run::<Jsonb>(client, &args)
            } else {
                writes.insert.run::<Jsonb>(client, &args)
            };
            let Some(written) = written else {
                // The insert met a row the lock did not see: one inserted since (the next round
                // sees it), or one row-level security hides from the caller (every round misses
                // it): then, as in `upsert`, a conflict whose server_data the caller may not see.
                unseen += usize::from(!existing);
                if unseen == 2 {
                    return Ok(crate::engine::finish_merge(client, &self.table, write, fields, &m, None));
                }
                continue;
            };
            let clocks = merge::clocks_with_floor(&m, ts_name);
            self.record_by(client, write, row_ts, m.row.by.as_deref(), Some(Jsonb::from_object(&clocks)), &[]);
            return Ok(crate::engine::finish_merge(client, &self.table, write, fields, &m, Some(written)));
        }
        Err(SyncError::Unsettled { table: self.table.name.clone(), rounds: MAX_ROUNDS })
    }

    /// Apply a delete (`$1` key, `$2` client_ts): delete the row if it is not newer and leave a
    /// tombstone; with no row, leave (or move forward) a tombstone so that an older write
    /// arriving later still loses. Under row-level security a row the caller cannot see looks
    /// like no row, so there a missing row is a conflict instead: no tombstone is left for a
    /// row that may exist.
    pub fn delete(&self, client: &mut SpiClient<'_>, write: &Write) -> Result<Option<Jsonb>, SyncError> {
        self.lock_key(&write.row_id);
        let args = [write.key.bind(), write.client_ts.into(), write.client_id.as_deref().into()];
        for _ in 0..MAX_ROUNDS {
            if let Some(answer) = self.delete.run::<Jsonb>(client, &args) {
                // The tombstone keeps its own clock as the floor of the fields' clocks, so a row
                // brought back by a write that merges nothing still knows which fields are older.
                let floor = merge::Clock { ts: write.client_ts.into_inner(), by: write.client_id.clone() };
                let clocks = merge::floor_only(&self.columns[self.ts].name, &floor);
                self.record(client, write, write.client_ts, Some(Jsonb::from_object(&clocks)), &[]);
                return Ok(Some(answer));
            }
            match self.lock.run::<bool>(client, &args) {
                Some(false) => return Ok(None),
                Some(true) => continue,
                None => {}
            }
            if self.rls() || as_feed_owner(|| self.tombstone.run::<bool>(client, &args)) == Some(false) {
                return Ok(None);
            }
            return Ok(Some(self.record(client, write, write.client_ts, Some(Jsonb::empty_object()), &[])));
        }
        Err(SyncError::Unsettled { table: self.table.name.clone(), rounds: MAX_ROUNDS })
    }
}

/// A table's merge policies by field; fields not listed are `lww`.
pub type Policies = HashMap<String, Policy>;

thread_local! {
    static TABLES: RefCell<HashMap<pg_sys::Oid, Rc<Tracked>>> = RefCell::new(HashMap::new());
    static POLICIES: RefCell<HashMap<pg_sys::Oid, Rc<Policies>>> = RefCell::new(HashMap::new());
    /// Tables changed since the cache last looked; filled by the relcache callback.
    static STALE: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static ALL_STALE: Cell<bool> = const { Cell::new(false) };
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Called by PostgreSQL for every relcache invalidation (InvalidOid: all relations). Only
/// records the fact: it may run in the middle of our own work, so it must not touch the cache.
unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid {
        ALL_STALE.set(true);
        return;
    }
    STALE.with(|stale| match stale.try_borrow_mut() {
        Ok(mut stale) if stale.len() < 1024 => stale.push(relid),
        _ => ALL_STALE.set(true),
    });
}

fn drain_stale() {
    let all = ALL_STALE.replace(false);
    let stale: Vec<pg_sys::Oid> = STALE.with(|s| std::mem::take(&mut *s.borrow_mut()));
    TABLES.with(|tables| {
        let mut tables = tables.borrow_mut();
        if all {
            tables.clear();
        } else {
            for relid in &stale {
                tables.remove(relid);
            }
        }
    });
    POLICIES.with(|policies| {
        let mut policies = policies.borrow_mut();
        if all {
            policies.clear();
        } else {
            for relid in &stale {
                policies.remove(relid);
            }
        }
    });
}

fn register_callback() {
    if !CALLBACK_REGISTERED.replace(true) {
        // SAFETY: registering a callback that only records OIDs; lives as long as the backend.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(relation_changed), pg_sys::Datum::from(0))
        };
    }
}

/// The merge policies of table `relid`, cached per backend until the table's next relcache
/// invalidation (set_policy sends one).
pub fn policies(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Rc<Policies> {
    register_callback();
    drain_stale();
    if let Some(hit) = POLICIES.with(|p| p.borrow().get(&relid).cloned()) {
        return hit;
    }
    let mut map = Policies::new();
    let rows = client
        .select(sql::FIELD_POLICIES, None, &[regclass(relid)])
        .expect("inventory_sync: reading field policies failed");
    for row in rows {
        let field: String = row.get(1).ok().flatten().unwrap_or_default();
        let policy: String = row.get(2).ok().flatten().unwrap_or_default();
        if let Some(policy) = Policy::parse(&policy) {
            map.insert(field, policy);
        }
    }
    let map = Rc::new(map);
    POLICIES.with(|p| p.borrow_mut().insert(relid, map.clone()));
    map
}

/// Run `f` as the owner of `inventory_sync.changes`, as a SECURITY DEFINER function would: the
/// feed and tombstones are written only through the sync functions, after the caller's own
/// statement on the tracked table has passed its rights and row-level security, so a caller
/// cannot write (or forge) the feed entry of a row it may not write.
fn as_feed_owner<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the user and security context read below.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
        }
    }
    // SAFETY: syscache lookups of the feed table and its owner; the user id is switched for the
    // duration of `f` and restored by the guard, also when an error unwinds through it.
    unsafe {
        let changes = crate::api::own_table_oid(c"changes");
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(changes));
        assert!(!tuple.is_null(), "inventory_sync.changes has no pg_class row");
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        let (mut user, mut context) = (pg_sys::InvalidOid, 0);
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let _restore = Restore(user, context);
        pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        f()
    }
}

/// Numeric types (and domains over them) that a `delta` field may have.
fn is_numeric(typid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookup of a type OID.
    let base = unsafe { pg_sys::getBaseType(typid) };
    [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID, pg_sys::NUMERICOID, pg_sys::FLOAT4OID, pg_sys::FLOAT8OID]
        .contains(&base)
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
    // SAFETY: syscache lookup and privilege check for the current user.
    if !unsafe { pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()) } {
        return Err(SyncError::NotOwner { table: name });
    }
    if relid != crate::api::default_table_oid() {
        let tracked = get(client, relid)?;
        let pos = tracked
            .column(field)
            .ok_or_else(|| SyncError::UnknownKey { key: field.into(), table: name.clone() })?;
        let col = &tracked.columns[pos];
        if pos == tracked.key || pos == tracked.ts {
            return Err(SyncError::NoPolicyHere { field: field.into(), table: name });
        }
        if col.generated {
            return Err(SyncError::GeneratedKey { key: field.into(), table: name });
        }
        if policy == Policy::Delta && !is_numeric(col.typid) {
            return Err(SyncError::DeltaNeedsNumber { field: field.into(), typ: col.type_name.clone() });
        }
    } else if field == "id" || field == "updated_at" {
        return Err(SyncError::NoPolicyHere { field: field.into(), table: name });
    }
    let args = [regclass(relid), field.into()];
    let result = match policy {
        Policy::Lww => client.update(sql::CLEAR_POLICY, None, &args),
        other => {
            let [a, b] = args;
            client.update(sql::SET_POLICY, None, &[a, b, other.as_str().into()])
        }
    };
    result.expect("inventory_sync: writing field policies failed");
    // SAFETY: queues an invalidation message for the relation: every backend reloads.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(())
}

/// The table's name, quoted and schema-qualified, as messages and the journal show it.
pub fn qualified_name(relid: pg_sys::Oid) -> String {
    // SAFETY: syscache lookups; both return NULL for an unknown OID, handled below.
    unsafe {
        let rel = pg_sys::get_rel_name(relid);
        if rel.is_null() {
            return format!("(table {})", relid.to_u32());
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        let nsp = if nsp.is_null() { "?".into() } else { CStr::from_ptr(nsp).to_string_lossy() };
        quote_qualified_identifier(nsp.as_ref(), CStr::from_ptr(rel).to_string_lossy().as_ref())
    }
}

fn regclass(relid: pg_sys::Oid) -> DatumWithOid<'static> {
    // SAFETY: an Oid datum typed as regclass.
    unsafe { DatumWithOid::new(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID) }
}

/// The table's live columns and its primary key's columns, from the system catalogs.
fn describe(client: &SpiClient<'_>, relid: pg_sys::Oid) -> (Vec<Column>, Vec<i16>) {
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
            &[regclass(relid)],
        )
        .expect("inventory_sync: reading pg_attribute failed");
    let mut columns = Vec::new();
    for row in rows {
        let name: String = row.get(2).ok().flatten().unwrap_or_default();
        let typid: pg_sys::Oid = row.get(3).ok().flatten().unwrap_or(pg_sys::InvalidOid);
        columns.push(Column {
            attnum: row.get(1).ok().flatten().unwrap_or(0),
            quoted: quote_identifier(&name),
            name,
            typid,
            typmod: row.get(4).ok().flatten().unwrap_or(-1),
            type_name: row.get(5).ok().flatten().unwrap_or_default(),
            generated: row.get(6).ok().flatten().unwrap_or(false),
            shape: shape_of(typid),
        });
    }
    let key: Vec<i16> = client
        .select(
            "SELECT pg_catalog.unnest(i.indkey::pg_catalog.int2[])
               FROM pg_catalog.pg_index i
              WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisprimary",
            None,
            &[regclass(relid)],
        )
        .expect("inventory_sync: reading pg_index failed")
        .map(|row| row.get::<i16>(1).ok().flatten().unwrap_or(0))
        .collect();
    (columns, key)
}

fn shape_of(typid: pg_sys::Oid) -> Shape {
    // SAFETY: syscache lookups on a type OID from pg_attribute.
    let base = unsafe { pg_sys::getBaseType(typid) };
    if base == pg_sys::JSONOID || base == pg_sys::JSONBOID {
        Shape::Json
    } else if unsafe { pg_sys::get_element_type(base) } != pg_sys::InvalidOid {
        Shape::Array
    } else {
        Shape::Scalar
    }
}

fn load(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Tracked, SyncError> {
    let name = qualified_name(relid);
    let row = client
        .select(
            "SELECT key_attnum, ts_attnum FROM inventory_sync.tracked
              WHERE tbl OPERATOR(pg_catalog.=) $1",
            None,
            &[regclass(relid)],
        )
        .expect("inventory_sync: reading inventory_sync.tracked failed");
    if row.is_empty() {
        return Err(SyncError::NotTracked { table: name });
    }
    let row = row.first();
    let key_attnum: i16 = row.get(1).ok().flatten().unwrap_or(0);
    let ts_attnum: i16 = row.get(2).ok().flatten().unwrap_or(0);
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
            other => SyncError::TrackingBroken {
                table: name.clone(),
                why: format!("{}.", capitalized(&other.to_string())),
            },
        })?;
    let (k, t) = (&columns[key], &columns[ts]);
    let typ = PgOid::from_untagged;
    let key_ts = vec![typ(k.typid), typ(pg_sys::TIMESTAMPTZOID), typ(pg_sys::TEXTOID)];
    let mut record_types = key_ts.clone();
    record_types.extend([typ(pg_sys::TEXTOID), typ(pg_sys::JSONBOID), typ(pg_sys::TEXTARRAYOID), typ(pg_sys::INT8OID)]);
    let oid = relid.to_u32();
    let server_row = sql::tracked_server_row(
        &name,
        oid,
        &k.quoted,
        &quote_literal(&k.name),
        &quote_literal(&t.name),
    );
    Ok(Tracked {
        lock: Kept::new(sql::tracked_lock(&name, oid, &k.quoted, &t.quoted), key_ts.clone()),
        lock_for_merge: Kept::new(sql::tracked_lock_for_merge(&name, oid, &k.quoted, &t.quoted), vec![typ(k.typid)]),
        tombstone_clock: Kept::new(sql::tracked_tombstone_clock(oid), vec![typ(k.typid)]),
        delete: Kept::new(sql::tracked_delete(&name, oid, &k.quoted, &t.quoted), key_ts.clone()),
        tombstone: Kept::new(sql::tracked_tombstone(oid), key_ts),
        record: Kept::new(sql::tracked_record(oid, false), record_types.clone()),
        record_with_clocks: Kept::new(sql::tracked_record(oid, true), record_types),
        rows: Kept::new(
            sql::tracked_rows(&name, &k.quoted, &t.quoted, key_type_name(k.typid)),
            vec![PgOid::from_untagged(pg_sys::TEXTARRAYOID)],
        ),
        table: Table::new(name, relid, k.typid, &server_row),
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

/// The tracked table `relid` for a write, from the cache or freshly described. Locks the table
/// first (ROW EXCLUSIVE, as the write will anyway), which processes pending invalidations.
pub fn get(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Rc<Tracked>, SyncError> {
    get_locked(client, relid, pg_sys::RowExclusiveLock)
}

/// The same for reading (ACCESS SHARE, which a hot standby allows).
pub fn get_for_read(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<Rc<Tracked>, SyncError> {
    get_locked(client, relid, pg_sys::AccessShareLock)
}

fn get_locked(client: &SpiClient<'_>, relid: pg_sys::Oid, lockmode: u32) -> Result<Rc<Tracked>, SyncError> {
    register_callback();
    // SAFETY: locking a relation OID; an OID that no longer names a table locks nothing real.
    unsafe { pg_sys::LockRelationOid(relid, lockmode as pg_sys::LOCKMODE) };
    drain_stale();
    if let Some(hit) = TABLES.with(|t| t.borrow().get(&relid).cloned()) {
        return Ok(hit);
    }
    let tracked = Rc::new(load(client, relid)?);
    TABLES.with(|t| t.borrow_mut().insert(relid, tracked.clone()));
    Ok(tracked)
}

/// The pg_catalog name of a supported key type.
fn key_type_name(typid: pg_sys::Oid) -> &'static str {
    match typid {
        pg_sys::INT8OID => "int8",
        pg_sys::INT4OID => "int4",
        pg_sys::UUIDOID => "uuid",
        _ => "text",
    }
}

/// Checks that the current user may track or untrack `relid`: a table, not ours, owned by them.
fn check_trackable(relid: pg_sys::Oid, name: &str) -> Result<(), SyncError> {
    // SAFETY: syscache lookups.
    let (relkind, nsp, owner) = unsafe {
        (
            pg_sys::get_rel_relkind(relid) as u8,
            pg_sys::get_rel_namespace(relid),
            pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()),
        )
    };
    if relkind != pg_sys::RELKIND_RELATION && relkind != pg_sys::RELKIND_PARTITIONED_TABLE {
        return Err(SyncError::NotATable { table: name.into() });
    }
    // A temporary table vanishes with its session without the drop event that would untrack it,
    // leaving tracking rows for an OID a later table may reuse; and no device syncs with it.
    // SAFETY: syscache lookup.
    if unsafe { pg_sys::get_rel_persistence(relid) } as u8 == pg_sys::RELPERSISTENCE_TEMP {
        return Err(SyncError::TemporaryTable { table: name.into() });
    }
    // SAFETY: syscache lookup of a schema OID.
    let nsp_name = unsafe { pg_sys::get_namespace_name(nsp) };
    if !nsp_name.is_null() && unsafe { CStr::from_ptr(nsp_name) }.to_bytes() == b"inventory_sync" {
        return Err(SyncError::OwnTable { table: name.into() });
    }
    if !owner {
        return Err(SyncError::NotOwner { table: name.into() });
    }
    Ok(())
}

/// Put `relid` under sync with `ts_column` as its write timestamp (again: change the column).
pub fn track(client: &mut SpiClient<'_>, relid: pg_sys::Oid, ts_column: &str) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    check_trackable(relid, &name)?;
    let (columns, primary_key) = describe(client, relid);
    let (key, ts) = validate(&name, &columns, &primary_key, TsColumn::Name(ts_column))?;
    client
        .update(
            "INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum) VALUES ($1, $2, $3)
             ON CONFLICT (tbl) DO UPDATE
                SET key_attnum = excluded.key_attnum, ts_attnum = excluded.ts_attnum",
            None,
            &[regclass(relid), columns[key].attnum.into(), columns[ts].attnum.into()],
        )
        .expect("inventory_sync: writing inventory_sync.tracked failed");
    // Every backend's cached description of the table is dropped when this commits.
    // SAFETY: queues an invalidation message for the relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(())
}

/// Take `relid` out of sync. Its journal rows stay.
pub fn untrack(client: &mut SpiClient<'_>, relid: pg_sys::Oid) -> Result<(), SyncError> {
    let name = qualified_name(relid);
    check_trackable(relid, &name)?;
    let deleted = client
        .update(
            "DELETE FROM inventory_sync.tracked WHERE tbl OPERATOR(pg_catalog.=) $1",
            None,
            &[regclass(relid)],
        )
        .expect("inventory_sync: writing inventory_sync.tracked failed");
    if deleted.len() == 0 {
        return Err(SyncError::NotTracked { table: name });
    }
    // SAFETY: as in track().
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    Ok(())
}

#[cfg(test)]
mod unit {
    use super::*;

    fn col(attnum: i16, name: &str, typid: pg_sys::Oid, type_name: &str) -> Column {
        Column {
            attnum,
            name: name.into(),
            quoted: name.into(),
            typid,
            typmod: -1,
            type_name: type_name.into(),
            generated: false,
            shape: Shape::Scalar,
        }
    }

    fn products() -> Vec<Column> {
        vec![
            col(1, "id", pg_sys::UUIDOID, "uuid"),
            col(2, "name", pg_sys::TEXTOID, "text"),
            col(3, "updated_at", pg_sys::TIMESTAMPTZOID, "timestamp with time zone"),
            col(4, "made", pg_sys::DATEOID, "date"),
        ]
    }

    #[test]
    fn a_valid_table() {
        assert_eq!(validate("t", &products(), &[1], TsColumn::Name("updated_at")), Ok((0, 2)));
        assert_eq!(validate("t", &products(), &[1], TsColumn::Attnum(3)), Ok((0, 2)));
    }

    #[test]
    fn refusals_say_what_is_missing() {
        let cols = products();
        assert!(matches!(validate("t", &cols, &[], TsColumn::Name("updated_at")),
                         Err(SyncError::NoSingleKey { columns: 0, .. })));
        assert!(matches!(validate("t", &cols, &[1, 2], TsColumn::Name("updated_at")),
                         Err(SyncError::NoSingleKey { columns: 2, .. })));
        assert!(matches!(validate("t", &cols, &[4], TsColumn::Name("updated_at")),
                         Err(SyncError::KeyType { .. })));
        assert!(matches!(validate("t", &cols, &[1], TsColumn::Name("modified_at")),
                         Err(SyncError::NoTimestampColumn { .. })));
        assert!(matches!(validate("t", &cols, &[1], TsColumn::Name("made")),
                         Err(SyncError::BadTimestampColumn { .. })));
        assert!(matches!(validate("t", &cols, &[1], TsColumn::Attnum(9)),
                         Err(SyncError::TrackingBroken { .. })));
        let mut generated = products();
        generated[2].generated = true;
        assert!(matches!(validate("t", &generated, &[1], TsColumn::Name("updated_at")),
                         Err(SyncError::BadTimestampColumn { .. })));
        let mut ts_key = products();
        ts_key[2].typid = pg_sys::TIMESTAMPTZOID;
        assert!(matches!(validate("t", &ts_key, &[3], TsColumn::Name("updated_at")),
                         Err(SyncError::KeyType { .. })));
    }

    #[test]
    fn every_supported_key_type() {
        for (typid, name) in [(pg_sys::INT8OID, "bigint"), (pg_sys::INT4OID, "integer"),
                              (pg_sys::UUIDOID, "uuid"), (pg_sys::TEXTOID, "text")] {
            let mut cols = products();
            cols[0].typid = typid;
            cols[0].type_name = name.into();
            assert_eq!(validate("t", &cols, &[1], TsColumn::Name("updated_at")), Ok((0, 2)), "{name}");
        }
    }
}
