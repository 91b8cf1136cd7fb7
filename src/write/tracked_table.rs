//! Tracked tables: the application's own typed tables. A write converts the payload's values to
//! the columns' types, then updates, else locks and looks, else inserts (see `sql`: a single
//! `INSERT … ON CONFLICT` cannot do partial updates), under a per-row advisory lock, and records
//! the change for the pull feed (`inventory_sync.changes`, written as its owner).

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use super::merging::{clock_micros, clock_of, timestamp, Fields};
use super::{applied, row_lock_hash, server_stamp, version_clock, Statements, Values, Write};
use crate::catalog::{self, positions, Table, Tracked};
use crate::pg::jsonb::Jsonb;
use crate::pg::kept::Row;
use crate::pg::param::Param;
use crate::pg::security;
use crate::pg::values::{canonical_text, to_param};
use inventory_sync_core::merge;
use inventory_sync_core::rules::MAX_ROUNDS;
use inventory_sync_core::values::{input_text, Shape};
use inventory_sync_core::version::Current;
use inventory_sync_core::SyncError;

/// The `id` argument as a value of the key column's type, and its canonical text.
pub fn key<'c>(client: &SpiClient<'c>, tracked: &Tracked, id: &str) -> Result<(Param<'c>, String), SyncError> {
    let col = &tracked.columns[tracked.key];
    let typid = pg_sys::Oid::from(col.typid);
    let key = to_param(client, Some(id), typid, col.typmod, &col.name, &tracked.table.name)?;
    let datum = key.datum().expect("a non-null input gave a null key");
    Ok((key, canonical_text(datum, typid)))
}

/// The payload's values, converted to their columns' types, by column position (ascending).
pub fn values<'c>(
    client: &SpiClient<'c>,
    tracked: &Tracked,
    id: &str,
    key: &Param<'_>,
    payload: Jsonb,
) -> Result<Vec<(usize, Param<'c>)>, SyncError> {
    let table = &tracked.table.name;
    let Some(fields) = payload.entries() else { unreachable!("check_write accepted a payload that is not an object") };
    let mut values: Vec<(usize, Param<'c>)> = Vec::with_capacity(fields.len());
    for (name, raw) in &fields {
        let Some(pos) = tracked.column(name) else {
            return Err(SyncError::UnknownKey { key: name.clone(), table: table.clone() });
        };
        let col = &tracked.columns[pos];
        let typid = pg_sys::Oid::from(col.typid);
        // A json or jsonb column takes the value's text as it is, at any depth.
        let text = if col.shape == Shape::Json {
            (raw.get() != "null").then(|| raw.get().to_string())
        } else {
            let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(|_| SyncError::NestedTooDeep)?;
            input_text(&value, col.shape)
        };
        if pos == tracked.key {
            // The key may repeat the id argument (clients send whole records), never differ.
            let same = match (&text, key.datum()) {
                (Some(t), Some(k)) => {
                    let given = to_param(client, Some(t), typid, col.typmod, &col.name, table)?;
                    given.datum().map(|g| canonical_text(g, typid)) == Some(canonical_text(k, typid))
                }
                _ => text.is_none(),
            };
            if !same {
                return Err(SyncError::IdMismatch {
                    column: col.name.clone(),
                    id: id.to_string(),
                    key: raw.get().to_string(),
                });
            }
            continue;
        }
        if pos == tracked.ts {
            return Err(SyncError::TimestampKey { key: name.clone(), table: table.clone() });
        }
        if col.generated {
            return Err(SyncError::GeneratedKey { key: name.clone(), table: table.clone() });
        }
        values.push((pos, to_param(client, text.as_deref(), typid, col.typmod, &col.name, table)?));
    }
    values.sort_by_key(|(pos, _)| *pos);
    Ok(values)
}

impl Tracked {
    /// Record an upsert of the `written` columns as the row's latest change: they take the
    /// write's clock, the other columns keep theirs. Answers the row's new version.
    fn record_upsert(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        written: &[usize],
    ) -> Result<i64, SyncError> {
        let by = write.client_id.as_deref();
        let clock =
            merge::clock_to_json(&merge::Clock { ts: write.client_ts.into_inner(), by: by.map(str::to_string) });
        let clocks = written.iter().map(|&i| (self.columns[i].name.clone(), clock.clone())).collect();
        let args = record_args(client, write, write.client_ts, by, Jsonb::from_object(&clocks))?;
        // The feed is written only as its owner (see `catalog::as_owner_of`). Most rows have a
        // record already, which the plain update moves forward.
        Ok(catalog::as_owner_of(c"changes", || {
            self.record_update.run::<i64>(client, &args).unwrap_or_else(|| {
                self.record.run::<i64>(client, &args).expect("inventory_sync: recording a change answered no row")
            })
        }))
    }

    /// Record the row's latest change, stamped `ts` by `by` (the row's timestamp and writer),
    /// with `clocks` as its field clocks. Answers the row's new version.
    fn record_by(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        ts: TimestampWithTimeZone,
        by: Option<&str>,
        clocks: Jsonb,
    ) -> Result<i64, SyncError> {
        let args = record_args(client, write, ts, by, clocks)?;
        Ok(catalog::as_owner_of(c"changes", || self.record_with_clocks.run::<i64>(client, &args))
            .expect("inventory_sync: recording a change answered no row"))
    }

    /// Lock the row: None if there is none (or the caller cannot see it), else whether the write
    /// may replace it. A row stamped exactly `client_ts` is decided by the tie rule, against the
    /// client_id of its change record (read now that the row is locked).
    fn lock_and_look(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Option<bool> {
        let (_, stored_ts) = self
            .lock
            .run_all(client, &[write.key.bind()])
            .next()
            .map(|row| (row.value::<bool>(1), row.value::<TimestampWithTimeZone>(2)))?;
        // A row without a timestamp was written outside sync: any write replaces it.
        let Some(stored_ts) = stored_ts else { return Some(true) };
        let mine = clock_of(write);
        if stored_ts.into_inner() != mine.ts || mine.by.is_none() {
            return Some(mine.beats(&merge::Clock { ts: stored_ts.into_inner(), by: None }));
        }
        let by = self.record_clock.run_all(client, &key_args(write)).next().and_then(|row| row.value::<String>(1));
        Some(mine.beats(&merge::Clock { ts: stored_ts.into_inner(), by }))
    }
}

/// `$1` the key and `$2` its shard key: the parameters of the statements that read one row's
/// change record.
fn key_args<'a>(write: &'a Write<'_>) -> [DatumWithOid<'a>; 2] {
    [write.key.bind(), write.side_key()]
}

/// `$1` the key, `$2` client_ts, `$3` client_id, `$4` the shard key: the tombstone check's
/// parameters (`sql::tracked_tombstone`); a delete's statements on the row take the first ones.
fn clock_args<'a>(write: &'a Write<'_>) -> [DatumWithOid<'a>; 4] {
    [write.key.bind(), write.client_ts.into(), write.client_id.as_deref().into(), write.side_key()]
}

/// The parameters of the change-record statements (see `sql::tracked_record`), with the feed
/// position of this transaction's changes and the server's clock for the row's version.
fn record_args<'a>(
    client: &mut SpiClient<'_>,
    write: &'a Write<'_>,
    ts: TimestampWithTimeZone,
    by: Option<&'a str>,
    clocks: Jsonb,
) -> Result<[DatumWithOid<'a>; 8], SyncError> {
    let position = positions::for_write(client)?;
    Ok([
        write.key.bind(),
        ts.into(),
        by.into(),
        write.op.as_str().into(),
        clocks.into(),
        position.into(),
        write.side_key(),
        version_clock().into(),
    ])
}

impl Statements for Tracked {
    fn table(&self) -> &Table {
        &self.table
    }

    fn is_reserved(&self, key: &str) -> bool {
        key == self.columns[self.key].name
    }

    fn written_fields(&self, _write: &Write<'_>, values: &Values<'_>) -> Vec<String> {
        let Values::Columns(values) = values else { unreachable!("a tracked table's values are columns") };
        values.iter().map(|(pos, _)| self.columns[*pos].name.clone()).collect()
    }

    /// Serialize the writes of the sync functions to one row: a transaction-level advisory lock
    /// on (table id, key), so that an upsert and a delete of a row that does not exist yet cannot
    /// both go ahead, and so that a statement reading the row's change record (the tie rule's
    /// client_id, a merge's field clocks) reads the latest writer's. Taken before any of the
    /// row's locks. Collisions of the 32-bit key hash only serialize unrelated rows a little. By
    /// table id, not OID (each node of a Citus cluster has its own OIDs), and there taken on the
    /// node that holds the row, whichever node runs the write, so writers of one row meet
    /// (`sql::tracked_lock_routed`, which also locks the row if it exists).
    fn lock_row(&self, client: &mut SpiClient<'_>, write: &Write<'_>) {
        let hash = row_lock_hash(&write.row_id);
        match &self.lock_routed {
            Some(routed) => {
                routed.run_all(client, &[self.table.id.into(), hash.into(), write.key.bind()]);
            }
            None => security::advisory_xact_lock(self.table.id, hash),
        }
    }

    /// Under the row's lock, after the row's (or its tombstone's) timestamp.
    fn stamp(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<TimestampWithTimeZone, SyncError> {
        self.lock_row(client, write);
        let stored = match self.lock.run_all(client, &[write.key.bind()]).next() {
            Some(row) => row.value::<TimestampWithTimeZone>(2),
            None => self.tombstone_clock.run_all(client, &key_args(write)).next().and_then(|row| row.value(1)),
        };
        server_stamp(stored)
    }

    /// The row's version under the row's lock (`lock_row`, which every sync write of the row
    /// holds to its end): its change record's (the row's or its tombstone's); with none, a row
    /// written by plain SQL has no version.
    fn current(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Current {
        self.lock_row(client, write);
        // Read as the feed's owner: a writer who may not read the table still compares versions.
        let version = catalog::as_owner_of(c"changes", || self.version.run::<i64>(client, &key_args(write)));
        if let Some(version) = version {
            return Current::At(version);
        }
        match self.lock.run_all(client, &[write.key.bind()]).next() {
            Some(_) => Current::Unversioned,
            None => Current::Absent,
        }
    }

    /// Apply an upsert of `columns` (positions, ascending) with `args` (`$1` key, `$2` client_ts,
    /// then the columns' values): update the row if it is older; else lock it and look (and
    /// update it if it is not newer); if there is none, let a newer tombstone win, else insert
    /// (an insert of a partial row fails its NOT NULL checks even when the row exists, so it
    /// comes last). None: the stored row or tombstone is newer (and now locked by us), or the
    /// caller cannot see the row under row-level security.
    fn upsert(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        values: &Values<'_>,
    ) -> Result<Option<Jsonb>, SyncError> {
        let Values::Columns(values) = values else { unreachable!("a tracked table's values are columns") };
        let columns: Vec<usize> = values.iter().map(|(pos, _)| *pos).collect();
        let writes = self.writes_for(&columns);
        let mut args = Vec::with_capacity(values.len() + 3);
        args.push(write.key.bind());
        args.push(write.client_ts.into());
        args.push(write.client_id.as_deref().into());
        args.extend(values.iter().map(|(_, p)| p.bind()));
        // Every sync write of the row holds the advisory lock to its end, so each statement here
        // starts after the previous writer committed, and the change record the tie rule reads
        // is the current one.
        self.lock_row(client, write);
        let answer = |created, version| Some(applied(write.key_json(), write.client_ts, Some(created), version));
        // The common case first: the row exists and is older.
        if writes.update_older.run::<bool>(client, &args).is_some() {
            return Ok(answer(false, self.record_upsert(client, write, &columns)?));
        }
        let mut unseen = 0;
        for _ in 0..MAX_ROUNDS {
            match self.lock_and_look(client, write) {
                // Newer: a conflict, decided against the version we now hold locked.
                Some(false) => return Ok(None),
                // Not newer (a row stamped exactly client_ts, or one written outside the sync
                // functions since the first try), and locked now, so the update applies; it
                // misses only a row that row-level security lets the caller lock but not update.
                Some(true) => {
                    if writes.merge_update.run::<bool>(client, &args).is_some() {
                        return Ok(answer(false, self.record_upsert(client, write, &columns)?));
                    }
                    continue;
                }
                None => {}
            }
            if catalog::as_owner_of(c"changes", || self.tombstone.run::<bool>(client, &clock_args(write)))
                == Some(false)
            {
                return Ok(None);
            }
            if writes.insert.run::<bool>(client, &args).is_some() {
                return Ok(answer(true, self.record_upsert(client, write, &columns)?));
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

    /// Apply a delete (`$1` key, `$2` client_ts): delete the row if it is not newer and leave a
    /// tombstone; with no row, leave (or move forward) a tombstone so that an older write
    /// arriving later still loses. Under row-level security a row the caller cannot see looks
    /// like no row, so there a missing row is a conflict instead: no tombstone is left for a
    /// row that may exist.
    fn delete(&self, client: &mut SpiClient<'_>, write: &Write<'_>) -> Result<Option<Jsonb>, SyncError> {
        self.lock_row(client, write);
        let args = clock_args(write);
        let answer = |version| Some(applied(write.key_json(), write.client_ts, None, version));
        // The tombstone keeps its own clock as the floor of the fields' clocks, so a row brought
        // back by a write that merges nothing still knows which fields are older.
        let tombstone = || Jsonb::from_object(&merge::floor_only(&self.columns[self.ts].name, &clock_of(write)));
        // The common case first: the row exists and is older.
        if self.delete_older.run::<bool>(client, &args[..2]).is_some() {
            return Ok(answer(self.record_by(
                client,
                write,
                write.client_ts,
                write.client_id.as_deref(),
                tombstone(),
            )?));
        }
        for _ in 0..MAX_ROUNDS {
            match self.lock_and_look(client, write) {
                Some(false) => return Ok(None),
                Some(true) => {
                    if self.delete_locked.run::<bool>(client, &args[..1]).is_some() {
                        let by = write.client_id.as_deref();
                        return Ok(answer(self.record_by(client, write, write.client_ts, by, tombstone())?));
                    }
                    continue;
                }
                None => {}
            }
            if security::rls_enabled(self.table.oid)
                || catalog::as_owner_of(c"changes", || self.tombstone.run::<bool>(client, &args)) == Some(false)
            {
                return Ok(None);
            }
            let by = write.client_id.as_deref();
            return Ok(answer(self.record_by(client, write, write.client_ts, by, Jsonb::empty_object())?));
        }
        Err(SyncError::Unsettled { table: self.table.name.clone(), rounds: MAX_ROUNDS })
    }

    fn read_for_merge(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        fields: &Fields,
    ) -> Result<Option<merge::Stored>, SyncError> {
        let (key_name, ts_name) = (&self.columns[self.key].name, &self.columns[self.ts].name);
        let mut stored = None;
        if let Some(row) = self.lock_for_merge.run_all(client, &[write.key.bind()]).next() {
            // Only the columns this write sets are read: the others are not rewritten, and may
            // hold values nested deeper than a JSON parser in Rust reads.
            let entries = row.value::<Jsonb>(1).and_then(Jsonb::entries).unwrap_or_default();
            let mut row_fields = serde_json::Map::new();
            for (name, raw) in entries {
                if fields.contains_key(&name) && name != *key_name && name != *ts_name {
                    let value = serde_json::from_str(raw.get()).map_err(|_| SyncError::NestedTooDeep)?;
                    row_fields.insert(name, value);
                }
            }
            let ts = clock_micros(row.value::<TimestampWithTimeZone>(2));
            stored = Some((row_fields, ts));
        }
        let stored = match stored {
            Some((row_fields, ts)) => {
                // The row is locked: its change record is the latest writer's.
                let (by, clocks) = self
                    .record_clock
                    .run_all(client, &key_args(write))
                    .next()
                    .map(|row| (row.value::<String>(1), row.value::<Jsonb>(2)))
                    .unwrap_or_default();
                // The floor is kept under the timestamp column's name, which no payload key is.
                let mut clocks = Jsonb::object_or_empty(clocks);
                let floor = merge::take_floor(&mut clocks, ts_name);
                Some(merge::Stored {
                    fields: row_fields,
                    row: merge::Clock { ts, by },
                    clocks,
                    deleted: false,
                    implicit_clocks: false,
                    floor,
                })
            }
            None => self.tombstone_clock.run_all(client, &key_args(write)).next().map(|row| merge::Stored {
                fields: serde_json::Map::new(),
                row: merge::Clock {
                    ts: clock_micros(row.value::<TimestampWithTimeZone>(1)),
                    by: row.value::<String>(2),
                },
                clocks: serde_json::Map::new(),
                deleted: true,
                implicit_clocks: false,
                floor: None,
            }),
        };
        Ok(stored)
    }

    fn write_merged(
        &self,
        client: &mut SpiClient<'_>,
        write: &Write<'_>,
        m: &merge::Merge,
        stored: Option<&merge::Stored>,
    ) -> Result<Option<Jsonb>, SyncError> {
        let mut values = Vec::with_capacity(m.applied.len());
        for name in &m.applied {
            let pos = self.column(name).expect("payload keys were checked against the columns");
            let col = &self.columns[pos];
            let text = input_text(&m.fields[name], col.shape);
            let typid = pg_sys::Oid::from(col.typid);
            values.push((pos, to_param(client, text.as_deref(), typid, col.typmod, &col.name, &self.table.name)?));
        }
        values.sort_by_key(|(pos, _)| *pos);
        let columns: Vec<usize> = values.iter().map(|(pos, _)| *pos).collect();
        let writes = self.writes_for(&columns);
        let row_ts = timestamp(m.row.ts);
        let mut args = vec![write.key.bind(), row_ts.into(), m.row.by.as_deref().into()];
        args.extend(values.iter().map(|(_, p)| p.bind()));
        let existing = stored.is_some_and(|s| !s.deleted);
        let statement = if existing { &writes.merge_update } else { &writes.insert };
        if statement.run::<bool>(client, &args).is_none() {
            return Ok(None);
        }
        let clocks = merge::clocks_with_floor(m, &self.columns[self.ts].name);
        let version = self.record_by(client, write, row_ts, m.row.by.as_deref(), Jsonb::from_object(&clocks))?;
        Ok(Some(applied(write.key_json(), row_ts, Some(!existing), version)))
    }
}
