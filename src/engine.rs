//! The one conflict engine. The default table and every tracked table go through `decide`: the
//! argument checks, the clock-skew guard, the atomic upsert and, when it declines, the journaled
//! conflict. Tables differ only in the SQL of their statements (see `sql`).

use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;

use crate::error::SyncError;
use crate::merge;
use crate::types::Jsonb;
use crate::rules::{self, Skew};
use crate::settings;
use crate::sql;
use crate::storage::Kept;

const JSONB: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::JSONBOID);
const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TIMESTAMPTZOID);
const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
const OID: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::OIDOID);
const INTEGER: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);
const FLOAT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::FLOAT8OID);

/// A value bound as a statement parameter: a datum of type `oid`, or NULL.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub datum: Option<pg_sys::Datum>,
    pub oid: pg_sys::Oid,
}

impl Param {
    pub fn bind(&self) -> DatumWithOid<'static> {
        match self.datum {
            // SAFETY: the datum was produced for type `oid` and lives for the current call.
            Some(d) => unsafe { DatumWithOid::new(d, self.oid) },
            None => DatumWithOid::null_oid(self.oid),
        }
    }
}

/// What a write does to its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Upsert,
    Delete,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Upsert => "upsert",
            Op::Delete => "delete",
        }
    }
}

/// What the conflict and rejection paths need of a table: its name for the journal, its OID for
/// the mutation log, and the two statements, built by `sql::conflict` and `sql::reject` for its
/// key type and row shape.
pub struct Table {
    pub name: String,
    pub oid: pg_sys::Oid,
    conflict: Kept,
    reject: Kept,
}

impl Table {
    /// `name` quoted and schema-qualified; `key_type` the key column's type; `server_row` the
    /// SELECT giving the stored row (or tombstone) as a client stores it, keyed by `$1`.
    pub fn new(name: String, oid: pg_sys::Oid, key_type: pg_sys::Oid, server_row: &str) -> Self {
        let common = vec![PgOid::from_untagged(key_type), JSONB, TIMESTAMPTZ, TEXT, TEXT, TEXT, TEXT];
        let mut reject_types = common.clone();
        reject_types.extend([INTEGER, FLOAT8]);
        Table {
            conflict: Kept::new(sql::conflict(server_row), common),
            reject: Kept::new(sql::reject(server_row), reject_types),
            name,
            oid,
        }
    }
}

impl Table {
    /// The parameters the conflict and rejection statements share, journaling `payload`.
    fn journal_args(&self, write: &Write, payload: Jsonb) -> [DatumWithOid<'_>; 7] {
        [
            write.key.bind(),
            payload.into(),
            write.client_ts.into(),
            self.name.as_str().into(),
            write.op.as_str().into(),
            write.client_id.as_deref().into(),
            write.mutation_id.as_deref().into(),
        ]
    }

    /// Journal `payload` (the write's, or the part of it that lost) as a stale write and answer
    /// the conflict, with the stored row as it now stands.
    pub fn journal(&self, client: &mut SpiClient<'_>, write: &Write, payload: Jsonb) -> Jsonb {
        self.conflict
            .run(client, &self.journal_args(write, payload))
            .expect("inventory_sync: the conflict statement answered no row")
    }
}

/// How many times a write goes round (lock, merge or insert) before giving up with 40001. Each
/// round that does not decide means a concurrent transaction inserted or deleted the row in
/// between; two rounds settle any realistic race.
pub const MAX_ROUNDS: usize = 10;

/// A stored timestamp as a clock's microseconds (NULL: older than everything).
pub fn clock_micros(ts: Option<TimestampWithTimeZone>) -> i64 {
    ts.map_or(i64::MIN, |t| t.into_inner())
}

/// Merge `write` (its `fields` and `base`) into `stored` under the table's `policies`.
pub fn merge_write(
    stored: Option<&merge::Stored>,
    write: &Write,
    fields: &serde_json::Map<String, serde_json::Value>,
    base: Option<&serde_json::Map<String, serde_json::Value>>,
    policies: &crate::catalog::Policies,
) -> Result<merge::Merge, SyncError> {
    let incoming = merge::Incoming { clock: clock_of(write), payload: fields, base };
    merge::merge(stored, &incoming, |f| policies.get(f).copied().unwrap_or(merge::Policy::Lww))
        .map_err(|merge::MergeError::NotANumber { field }| SyncError::DeltaNotANumber { field })
}

/// The timestamp of a clock, for binding.
pub fn timestamp(micros: i64) -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(micros).expect("a merged clock is a valid timestamp")
}

/// The write's clock for the merge rules.
pub fn clock_of(write: &Write) -> merge::Clock {
    merge::Clock { ts: write.client_ts.into_inner(), by: write.client_id.clone() }
}

/// Finish a merging write: journal what lost and answer. `written` is the write statement's
/// `applied` answer (None for a conflict, where nothing was written).
pub fn finish_merge(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write,
    fields: &serde_json::Map<String, serde_json::Value>,
    m: &merge::Merge,
    written: Option<Jsonb>,
) -> Jsonb {
    use serde_json::value::{to_raw_value, RawValue};
    use serde_json::Value;
    // Answers are put together from their parts' JSON text, never parsed whole: `server_data` is
    // the stored row, which may nest deeper than a JSON parser in Rust reads.
    fn raw(v: &impl serde::Serialize) -> Box<RawValue> {
        to_raw_value(v).expect("an answer part serializes")
    }
    let mut answer = match (m.status, written) {
        (merge::Status::Conflict, _) | (_, None) => table.journal(client, write, write.payload).entries(),
        (merge::Status::Applied, Some(w)) => w.entries(),
        (merge::Status::Merged, Some(w)) => {
            let lost: serde_json::Map<String, Value> =
                m.lost.iter().filter_map(|k| fields.get(k).map(|v| (k.clone(), v.clone()))).collect();
            let journaled = table.journal(client, write, Jsonb::from_object(&lost));
            let mut answer = w.entries().expect("an answer is an object");
            answer.insert("status".into(), raw(&"merged"));
            answer.insert("applied".into(), raw(&m.applied));
            answer.insert("lost".into(), raw(&m.lost));
            let server_data = journaled.entries().and_then(|mut j| j.remove("server_data"));
            answer.insert("server_data".into(), server_data.unwrap_or_else(|| raw(&Value::Null)));
            Some(answer)
        }
    }
    .expect("an answer is an object");
    if !m.without_base.is_empty() {
        answer.insert("delta_without_base".into(), raw(&m.without_base));
    }
    Jsonb::from_serialize(&answer)
}

/// One client write, checked.
pub struct Write {
    pub op: Op,
    pub key: Param,
    /// The key's canonical text: the journal's and the mutation log's row id.
    pub row_id: String,
    /// The payload as sent (`{}` for a delete).
    pub payload: Jsonb,
    pub client_ts: TimestampWithTimeZone,
    pub client_id: Option<String>,
    pub mutation_id: Option<String>,
}

/// Raise PostgreSQL's own `permission denied for table` (42501) unless the current user holds at
/// least one of INSERT, UPDATE and DELETE on the table.
fn check_may_write(relid: pg_sys::Oid) {
    let wanted = (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE) as pg_sys::AclMode;
    // SAFETY: catalog lookups for a table OID and the current user; aclcheck_error raises.
    unsafe {
        if pg_sys::pg_class_aclmask(relid, pg_sys::GetUserId(), wanted, pg_sys::AclMaskHow::ACLMASK_ANY) == 0 {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NO_PRIV,
                pg_sys::ObjectType::OBJECT_TABLE,
                pg_sys::get_rel_name(relid),
            );
        }
    }
}

/// Refuse to write in a read-only transaction or on a standby with PostgreSQL's own error
/// (25006), before anything could try to claim a transaction id (which on a standby would be an
/// internal error).
pub fn check_writable(function: &'static std::ffi::CStr) {
    // SAFETY: raises ERROR when the transaction is read-only; returns otherwise.
    unsafe { pg_sys::PreventCommandIfReadOnly(function.as_ptr()) };
}

/// The checks every write gets: client_ts present and finite; a mutation id only with a client
/// id.
pub fn check_common(
    client_ts: Option<TimestampWithTimeZone>,
    client_id: &Option<String>,
    mutation_id: &Option<String>,
) -> Result<TimestampWithTimeZone, SyncError> {
    let client_ts = client_ts.ok_or(SyncError::NullArgument("client_ts"))?;
    if client_ts.is_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "infinity" });
    }
    if client_ts.is_neg_infinity() {
        return Err(SyncError::InfiniteTimestamp { value: "-infinity" });
    }
    if mutation_id.is_some() && client_id.is_none() {
        return Err(SyncError::MutationWithoutClient);
    }
    Ok(client_ts)
}

/// The checks every upsert gets: those of `check_common`, and a payload that is an object.
pub fn check_write(
    payload: Option<Jsonb>,
    client_ts: Option<TimestampWithTimeZone>,
    client_id: &Option<String>,
    mutation_id: &Option<String>,
) -> Result<(Jsonb, TimestampWithTimeZone), SyncError> {
    let payload = payload.ok_or(SyncError::NullArgument("payload"))?;
    let client_ts = check_common(client_ts, client_id, mutation_id)?;
    rules::check_payload_kind(&payload.kind())?;
    Ok((payload, client_ts))
}

thread_local! {
    static CLAIM: Kept = Kept::new(sql::MUTATION_CLAIM.into(), vec![TEXT, OID, TEXT, TEXT]);
    static REPLAY: Kept = Kept::new(sql::MUTATION_REPLAY.into(), vec![TEXT, OID, TEXT, TEXT]);
    static REMEMBER: Kept = Kept::new(sql::MUTATION_REMEMBER.into(), vec![TEXT, OID, TEXT, TEXT, JSONB]);
    static FORGET: Kept = Kept::new(sql::MUTATION_FORGET.into(), vec![TEXT, OID, TEXT, TEXT]);
}

/// Decide one checked write: rejected (clock skew), applied (by `apply`, which answers None when
/// the stored row is newer and leaves it locked), or a journaled conflict. A write with a
/// client_id and mutation_id is decided once: a repeat gets the first answer, marked
/// `"duplicate": true`. Everything runs in the caller's transaction.
pub fn decide(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<Jsonb, SyncError> {
    let (Some(client_id), Some(mutation_id)) = (&write.client_id, &write.mutation_id) else {
        return decide_once(client, table, write, apply).map(|(answer, _)| answer);
    };
    let ids = || -> [DatumWithOid<'_>; 4] {
        [
            write.row_id.as_str().into(),
            table.oid.into(),
            client_id.as_str().into(),
            mutation_id.as_str().into(),
        ]
    };
    // Only a user who may write the table claims a mutation id in it (the mutation log's policy
    // says so too): this gives the refusal PostgreSQL's own wording.
    check_may_write(table.oid);
    // Claiming first makes a concurrent retry wait for this one and then see its answer.
    if CLAIM.with(|k| k.run::<bool>(client, &ids())).is_none() {
        // Claimed before: by this user (its answer is replayed) or by another database user
        // (whose answers this user may not read).
        return REPLAY.with(|k| k.run::<Jsonb>(client, &ids())).ok_or_else(|| {
            SyncError::MutationOfOtherUser { client_id: client_id.clone(), mutation_id: mutation_id.clone() }
        });
    }
    let (answer, decided) = decide_once(client, table, write, apply)?;
    if decided == Decided::Rejected {
        // Not applied: the same mutation, sent again once the device's clock is right, is new.
        FORGET.with(|k| k.run::<bool>(client, &ids()));
    } else {
        let [a, b, c, d] = ids();
        REMEMBER.with(|k| k.run::<bool>(client, &[a, b, c, d, answer.into()]));
    }
    Ok(answer)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    Rejected,
    Written,
}

fn decide_once(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<(Jsonb, Decided), SyncError> {
    let max_skew = settings::MAX_CLOCK_SKEW.get();
    // SAFETY: plain read of the current transaction's start time, i.e. now().
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    match rules::check_clock_skew(write.client_ts.into_inner(), now, max_skew) {
        Skew::Reject { ahead_by_micros } => {
            // A rejection writes only the journal: it must not be a way to journal (and have
            // server_data read) for a caller who may not write the table at all.
            check_may_write(table.oid);
            let ahead = ahead_by_micros as f64 / rules::MICROS_PER_SECOND as f64;
            let [a, b, c, d, e, f, g] = table.journal_args(write, write.payload);
            let answer = table
                .reject
                .run(client, &[a, b, c, d, e, f, g, max_skew.into(), ahead.into()])
                .expect("inventory_sync: the rejection statement answered no row");
            Ok((answer, Decided::Rejected))
        }
        Skew::Accept => match apply(client)? {
            Some(applied) => Ok((applied, Decided::Written)),
            None => Ok((table.journal(client, write, write.payload), Decided::Written)),
        },
    }
}
