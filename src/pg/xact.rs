//! The transaction's clock and position, relation locks and invalidations.

use pgrx::pg_sys;

/// The current transaction's start time (`now()`), in microseconds since 2000-01-01.
pub fn start_micros() -> i64 {
    // SAFETY: a plain read of the current transaction's start time.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// The system clock now (`clock_timestamp()`), in microseconds since 2000-01-01.
pub fn clock_micros() -> i64 {
    // SAFETY: reads the system clock; no state of the backend involved.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

/// Lock a relation for the rest of the transaction (which also processes pending
/// invalidations). An OID that no longer names a relation locks nothing real.
pub fn lock_relation(relid: pg_sys::Oid, mode: u32) {
    // SAFETY: locking a relation OID.
    unsafe { pg_sys::LockRelationOid(relid, mode as pg_sys::LOCKMODE) };
}

/// Queue a relcache invalidation of the relation: every backend drops what it derived from it
/// when this transaction commits.
pub fn invalidate(relid: pg_sys::Oid) {
    // SAFETY: queues an invalidation message for the relation.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
}

/// The current transaction's own (top-level) 64-bit id, assigned now if it has none yet: the id
/// under which everything it writes becomes visible when it commits.
pub fn top_full_xid() -> u64 {
    // SAFETY: assigns (or reads) the top-level transaction id; raises if the transaction cannot
    // write (callers checked that it can).
    unsafe { pg_sys::GetTopFullTransactionId() }.value
}

/// The cluster's system identifier (set by initdb; a restored dump runs on another cluster).
pub fn system_identifier() -> i64 {
    // SAFETY: reads the control file's identifier kept in shared memory.
    unsafe { pg_sys::GetSystemIdentifier() as i64 }
}

/// The OID of the database this backend is connected to.
pub fn database_id() -> pg_sys::Oid {
    // SAFETY: a plain read of the backend's database OID, set at connection.
    unsafe { pg_sys::MyDatabaseId }
}
