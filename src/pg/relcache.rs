//! Relcache invalidations, as PostgreSQL's own derived state follows them: a callback records
//! which tables changed (ALTER TABLE in any backend, and track/untrack/set_policy, which send an
//! invalidation); the caches ask `take_changed` before they answer. One table more is watched by a
//! counter (`generation`): the eras, whose era a backend caches.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

thread_local! {
    static CHANGED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static ALL_CHANGED: Cell<bool> = const { Cell::new(false) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static WATCHED: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Called by PostgreSQL for every relcache invalidation (InvalidOid: all relations). Only
/// records the fact: it may run in the middle of our own work, so it must not touch any cache.
unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || relid == WATCHED.get() {
        GENERATION.set(GENERATION.get() + 1);
    }
    if relid == pg_sys::InvalidOid {
        ALL_CHANGED.set(true);
        return;
    }
    CHANGED.with(|changed| match changed.try_borrow_mut() {
        Ok(mut changed) if changed.len() < 1024 => changed.push(relid),
        _ => ALL_CHANGED.set(true),
    });
}

/// What changed since the last call.
pub enum Changed {
    All,
    These(Vec<pg_sys::Oid>),
}

fn register() {
    if !REGISTERED.replace(true) {
        // SAFETY: registering a callback that only records OIDs; it lives as long as the backend.
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relation_changed), pg_sys::Datum::from(0)) };
    }
}

/// A counter of the invalidations of the table `relid` (or of every table) this backend has
/// received: what it derived from the table holds while the counter stays the same. One table is
/// watched at a time; watching another moves the counter too.
pub fn generation(relid: pg_sys::Oid) -> u64 {
    register();
    if WATCHED.replace(relid) != relid {
        GENERATION.set(GENERATION.get() + 1);
    }
    GENERATION.get()
}

/// The tables changed since the last call (registering the callback on first use).
pub fn take_changed() -> Changed {
    register();
    let all = ALL_CHANGED.replace(false);
    let these = CHANGED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if all {
        Changed::All
    } else {
        Changed::These(these)
    }
}
