//! The transaction's clock and position, relation locks and invalidations.

use pgrx::pg_sys;

/// The current transaction's start time (`now()`), in microseconds since 2000-01-01.
pub fn start_micros() -> i64 {
    // SAFETY: a plain read of the current transaction's start time.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

/// The next full transaction id the server will hand out.
pub fn next_full_xid() -> u64 {
    // SAFETY: reads the shared next-transaction-id counter.
    unsafe { pg_sys::ReadNextFullTransactionId() }.value
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
