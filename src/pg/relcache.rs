//! Relcache invalidations, as PostgreSQL's own derived state follows them: a callback records
//! which tables changed (ALTER TABLE in any backend, and track/untrack/set_policy, which send an
//! invalidation); the caches ask `take_changed` before they answer. A few tables more are watched
//! by a counter (`generation`): the eras, whose era a backend caches, and the catalogs, which on a
//! Citus cluster change on every node at once.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

const WATCHED_MAX: usize = 4;

thread_local! {
    static CHANGED: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    static ALL_CHANGED: Cell<bool> = const { Cell::new(false) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
    static WATCHED: Cell<[pg_sys::Oid; WATCHED_MAX]> = const { Cell::new([pg_sys::InvalidOid; WATCHED_MAX]) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Called by PostgreSQL for every relcache invalidation (InvalidOid: all relations). Only
/// records the fact: it may run in the middle of our own work, so it must not touch any cache.
unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || WATCHED.get().contains(&relid) {
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

/// A counter of the invalidations of the watched tables (or of every table) this backend has
/// received: what it derived from the table `relid` holds while the counter stays the same.
/// Watching a table moves the counter; a few tables are watched at once (a fifth pushes out the
/// first, moving the counter again).
pub fn generation(relid: pg_sys::Oid) -> u64 {
    register();
    let mut watched = WATCHED.get();
    if !watched.contains(&relid) {
        watched.rotate_left(1);
        watched[WATCHED_MAX - 1] = relid;
        WATCHED.set(watched);
        GENERATION.set(GENERATION.get() + 1);
    }
    GENERATION.get()
}

/// The counter as it stands, without watching anything more.
pub fn current_generation() -> u64 {
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
