//! The one decision flow every write goes through: mutation ids (a retried write is decided
//! once), the clock-skew guard, then apply or journal. What "apply" means is the table's (see
//! `Statements`); this file only decides.

use std::cell::Cell;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, PgOid};
use pgrx::spi::SpiClient;

use super::merging::timestamp;
use super::Write;
use crate::catalog::{cluster, positions, Table};
use crate::pg::jsonb::{Jsonb, Scalar};
use crate::pg::kept::{Kept, Row};
use crate::pg::subxact::{self, Failure};
use crate::pg::{security, xact};
use crate::settings;
use inventory_sync_core::rules::{self, Ordering, Skew};
use inventory_sync_core::sql;
use inventory_sync_core::tracking::Side;
use inventory_sync_core::version;
use inventory_sync_core::{SqlState, SyncError};

const JSONB: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::JSONBOID);
const TEXT: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::TEXTOID);
const INT4: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT4OID);
const INT8: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::INT8OID);
const UUID: PgOid = PgOid::BuiltIn(pg_sys::BuiltinOid::UUIDOID);

/// The rejection's message.
const SKEW_MESSAGE: &str = "client_ts is ahead of the server clock by more than inventory_sync.max_clock_skew; \
correct the device clock and send the change again";

/// The stored row as an answer shows it: `server_data` and its version (each None: no row the
/// caller may see; the version also for a row no sync function wrote).
struct Stored {
    data: Option<Jsonb>,
    version: Option<String>,
}

impl Stored {
    fn version(&self) -> Scalar<'_> {
        self.version.as_deref().map_or(Scalar::Object(None), Scalar::Text)
    }
}

/// Journal `payload` (the write's, or the part of it that lost) with `reason`; answers the
/// stored row as it now stands, as the journal keeps it, with its version.
fn journal_row(client: &mut SpiClient<'_>, table: &Table, write: &Write<'_>, payload: Jsonb, reason: &str) -> Stored {
    // A uuid or text row's entry goes to its node on a Citus cluster (see `cluster::journal_key`).
    let shard_key = match write.side {
        Side::Uuid | Side::Text => cluster::journal_key(client, table.oid, write.key.bind()).unwrap_or(write.shard_key),
        Side::Bigint => write.shard_key,
    };
    let args = [
        write.key.bind(),
        payload.into(),
        write.client_ts.into(),
        table.name.as_str().into(),
        write.op.as_str().into(),
        write.client_id.as_deref().into(),
        write.mutation_id.as_deref().into(),
        reason.into(),
        shard_key.into(),
    ];
    let row = table.journal.run_all(client, &args).next();
    Stored {
        data: row.as_ref().and_then(|row| row.value::<Jsonb>(1)),
        version: row.and_then(|row| row.value::<i64>(2)).map(version::text),
    }
}

/// Journal `payload` (the write's, or the part of it that lost) as a stale write and answer the
/// conflict, with the stored row as it now stands and its version.
pub fn journal(client: &mut SpiClient<'_>, table: &Table, write: &Write<'_>, payload: Jsonb) -> Jsonb {
    let stored = journal_row(client, table, write, payload, "stale");
    Jsonb::object(&[
        ("status", Scalar::Text("conflict")),
        ("id", write.key_json()),
        ("server_data", Scalar::Object(stored.data)),
        ("version", stored.version()),
    ])
}

/// The mutation log's statements of one side (see `sql::mutation_claim`).
struct MutationLog {
    claim: Kept,
    replay: Kept,
    remember: Kept,
    forget: Kept,
}

impl MutationLog {
    fn new(side: Side) -> MutationLog {
        let shard_key = match side {
            Side::Bigint => INT8,
            Side::Uuid => UUID,
            Side::Text => TEXT,
        };
        let ids = vec![TEXT, INT4, TEXT, TEXT, shard_key];
        let mut with_answer = ids.clone();
        with_answer.push(JSONB);
        MutationLog {
            claim: Kept::new(sql::mutation_claim(side), ids.clone()),
            replay: Kept::new(sql::mutation_replay(side), ids.clone()),
            remember: Kept::new(sql::mutation_remember(side), with_answer),
            forget: Kept::new(sql::mutation_forget(side), ids),
        }
    }
}

thread_local! {
    static BIGINT_LOG: MutationLog = MutationLog::new(Side::Bigint);
    static UUID_LOG: MutationLog = MutationLog::new(Side::Uuid);
    static TEXT_LOG: MutationLog = MutationLog::new(Side::Text);
}

/// Run `f` with the mutation log's statements of `side`.
fn with_log<T>(side: Side, f: impl FnOnce(&MutationLog) -> T) -> T {
    match side {
        Side::Bigint => BIGINT_LOG.with(f),
        Side::Uuid => UUID_LOG.with(f),
        Side::Text => TEXT_LOG.with(f),
    }
}

/// Decide one checked write: rejected (clock skew), applied (by `apply`, which answers None when
/// the stored row is newer and leaves it locked), or a journaled conflict. A write with a
/// client_id and mutation_id is decided once: a repeat gets the first answer, marked
/// `"duplicate": true`. Everything runs in the caller's transaction.
pub fn decide(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write<'_>,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<Jsonb, SyncError> {
    let (Some(client_id), Some(mutation_id)) = (&write.client_id, &write.mutation_id) else {
        return decide_once(client, table, write, apply).map(|(answer, _)| answer);
    };
    let ids = || -> [DatumWithOid<'_>; 5] {
        [
            write.row_id.as_str().into(),
            table.id.into(),
            client_id.as_str().into(),
            mutation_id.as_str().into(),
            write.side_key(),
        ]
    };
    // Only a user who may write the table claims a mutation id in it (the mutation log's policy
    // says so too): this gives the refusal PostgreSQL's own wording.
    security::check_may_write(table.oid);
    // Claiming first makes a concurrent retry wait for this one and then see its answer.
    if with_log(write.side, |log| log.claim.run::<bool>(client, &ids())).is_none() {
        // Claimed before: by this user (its answer is replayed) or by another database user
        // (whose answers this user may not read).
        return with_log(write.side, |log| log.replay.run::<Jsonb>(client, &ids())).ok_or_else(|| {
            SyncError::MutationOfOtherUser { client_id: client_id.clone(), mutation_id: mutation_id.clone() }
        });
    }
    let (answer, decided) = decide_once(client, table, write, apply)?;
    if decided == Decided::Rejected {
        // Not applied: the same mutation, sent again once the device's clock is right, is new.
        with_log(write.side, |log| log.forget.run::<bool>(client, &ids()));
    } else {
        let [a, b, c, d, e] = ids();
        with_log(write.side, |log| log.remember.run::<bool>(client, &[a, b, c, d, e, answer.into()]));
    }
    Ok(answer)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decided {
    /// Rejected for the device's clock: not remembered, the same write is decided again once
    /// the clock is right.
    Rejected,
    /// Refused by the table's own rules: remembered, as it would be refused again.
    Refused,
    Written,
}

fn decide_once(
    client: &mut SpiClient<'_>,
    table: &Table,
    write: &Write<'_>,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<(Jsonb, Decided), SyncError> {
    // A write the server orders carries the server's stamp, not a device's clock.
    let max_skew = if write.ordering == Ordering::Server { -1 } else { settings::MAX_CLOCK_SKEW.get() };
    let now = xact::start_micros();
    match rules::check_clock_skew(write.client_ts.into_inner(), now, max_skew) {
        Skew::Reject { ahead_by_micros } => {
            // A rejection writes only the journal: it must not be a way to journal (and have
            // server_data read) for a caller who may not write the table at all.
            security::check_may_write(table.oid);
            let ahead = ahead_by_micros as f64 / rules::MICROS_PER_SECOND as f64;
            let stored = journal_row(client, table, write, write.payload, "clock_skew");
            let answer = Jsonb::object(&[
                ("status", Scalar::Text("rejected")),
                ("id", write.key_json()),
                ("reason", Scalar::Text("clock_skew")),
                ("client_ts", Scalar::Timestamptz(write.client_ts)),
                ("server_time", Scalar::Timestamptz(timestamp(now))),
                ("ahead_by_seconds", Scalar::Float(ahead)),
                ("max_clock_skew_seconds", Scalar::Int(max_skew.into())),
                ("message", Scalar::Text(SKEW_MESSAGE)),
                ("version", stored.version()),
            ]);
            Ok((answer, Decided::Rejected))
        }
        Skew::Accept => match applying(client, table, apply)? {
            Outcome::Written(applied) => {
                notify(client, table)?;
                Ok((applied, Decided::Written))
            }
            Outcome::Stale => Ok((journal(client, table, write, write.payload), Decided::Written)),
            Outcome::Refused(refusal) => Ok((refused(client, table, write, refusal), Decided::Refused)),
        },
    }
}

thread_local! {
    static NOTIFY: Kept = Kept::new(sql::NOTIFY.into(), vec![TEXT]);
}

/// With `inventory_sync.notify` on, queue the notification of a change to `table` (sent when
/// the transaction commits; PostgreSQL sends a transaction's identical notifications once, so a
/// transaction notifies once per table).
fn notify(client: &mut SpiClient<'_>, table: &Table) -> Result<(), SyncError> {
    if !settings::NOTIFY.get() {
        return Ok(());
    }
    let position = positions::for_write(client)?;
    let payload =
        Jsonb::object(&[("table", Scalar::Text(&table.name)), ("position", Scalar::Text(&position.to_string()))]);
    NOTIFY.with(|notify| notify.run_all(client, &[payload.to_text().as_str().into()]));
    Ok(())
}

/// What became of a write that passed the clock guard.
enum Outcome {
    /// Applied (or merged): the answer.
    Written(Jsonb),
    /// The stored row is newer: the write is journaled.
    Stale,
    /// The table's own rules refused it (a `SyncError::Refused`).
    Refused(SyncError),
}

thread_local! {
    /// Whether a tracked write catches its rules' errors in a subtransaction of its own (see
    /// `batched`).
    static OWN_SUBTRANSACTION: Cell<bool> = const { Cell::new(true) };
}

/// Run `f` with the tracked writes inside it applied without a subtransaction each: an error of a
/// table's rules then fails what `f` runs in. For a batch's chunk, already in a subtransaction
/// and redone one change at a time (each caught on its own) if one fails; and for an atomic
/// batch, which a refused change fails whole. A committed subtransaction that wrote keeps a
/// transaction id of its own until the end of the transaction, and beyond 64 of them every
/// other session's snapshots get slower (PostgreSQL's subtransaction cache overflows): a
/// subtransaction per change of a large batch would cost every session.
pub fn batched<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            OWN_SUBTRANSACTION.with(|own| own.set(self.0));
        }
    }
    let _restore = Restore(OWN_SUBTRANSACTION.with(|own| own.replace(false)));
    f()
}

/// Apply the write. On a tracked table in a subtransaction (unless `batched`): an error of the
/// table's own rules rolls back what the write did and refuses it (the call goes on); any other
/// error is raised (or returned) as it was. The default table has no rules of the
/// application's.
fn applying(
    client: &mut SpiClient<'_>,
    table: &Table,
    apply: impl FnOnce(&mut SpiClient<'_>) -> Result<Option<Jsonb>, SyncError>,
) -> Result<Outcome, SyncError> {
    let outcome = |applied: Option<Jsonb>| applied.map_or(Outcome::Stale, Outcome::Written);
    if table.id == 0 || !OWN_SUBTRANSACTION.with(Cell::get) {
        return apply(client).map(outcome);
    }
    let (result, noted) =
        subxact::noting_errors(|| subxact::in_subtransaction(|| apply(client)), |failure: &Failure| failure.sqlstate);
    let failure = match result.map_err(Failure::returned) {
        Ok(applied) => return Ok(outcome(applied)),
        Err(Ok(refused @ SyncError::Refused { .. })) => return Ok(Outcome::Refused(refused)),
        // An error of the write's own checks, returned rather than raised: as it was.
        Err(Ok(returned)) => return Err(returned),
        Err(Err(raised)) => raised,
    };
    match refusal(failure.sqlstate, &failure.message, noted) {
        Some(refused) => Ok(Outcome::Refused(refused)),
        None => failure.raise_again(),
    }
}

/// The refusal an error of SQLSTATE `sqlstate` is, if it is one of a table's rules: a constraint's
/// (class 23, a domain's CHECK too) or an error a trigger raised (`noted`: what was noted of it
/// while PostgreSQL reported it). None for any other error.
pub fn refusal(sqlstate: SqlState, message: &str, noted: Option<subxact::Noted>) -> Option<SyncError> {
    let reason = match &noted {
        _ if sqlstate.is_integrity_violation() => "constraint",
        Some(noted) if noted.in_trigger && sqlstate.belongs_to_change() => "trigger",
        _ => return None,
    };
    Some(SyncError::Refused {
        reason,
        constraint: noted.and_then(|n| n.constraint),
        sqlstate,
        message: message.to_string(),
    })
}

/// Journal a refused write (the reason: `constraint` or `trigger`) and answer `rejected` with
/// what refused it and the stored row as it stands.
fn refused(client: &mut SpiClient<'_>, table: &Table, write: &Write<'_>, refusal: SyncError) -> Jsonb {
    let SyncError::Refused { reason, constraint, sqlstate, message } = refusal else {
        unreachable!("only a refusal is answered as one")
    };
    let stored = journal_row(client, table, write, write.payload, reason);
    let sqlstate = sqlstate.text();
    Jsonb::object(&[
        ("status", Scalar::Text("rejected")),
        ("id", write.key_json()),
        ("reason", Scalar::Text(reason)),
        ("constraint", constraint.as_deref().map_or(Scalar::Object(None), Scalar::Text)),
        ("sqlstate", Scalar::Text(&sqlstate)),
        ("message", Scalar::Text(&message)),
        ("server_data", Scalar::Object(stored.data)),
        ("version", stored.version()),
    ])
}
