//! Relcache invalidations, as PostgreSQL's own derived state follows them: a callback records
//! which tables changed (ALTER TABLE in any backend, and track/untrack/set_policy, which send an
//! invalidation); the caches ask `take_changed` before they answer.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

thread_local! {
    static CHANGED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static ALL_CHANGED: Cell<bool> = const { Cell::new(false) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Called by PostgreSQL for every relcache invalidation (InvalidOid: all relations). Only
/// records the fact: it may run in the middle of our own work, so it must not touch any cache.
unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
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

/// The tables changed since the last call (registering the callback on first use).
pub fn take_changed() -> Changed {
    if !REGISTERED.replace(true) {
        // SAFETY: registering a callback that only records OIDs; it lives as long as the backend.
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relation_changed), pg_sys::Datum::from(0)) };
    }
    let all = ALL_CHANGED.replace(false);
    let these = CHANGED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if all {
        Changed::All
    } else {
        Changed::These(these)
    }
}
