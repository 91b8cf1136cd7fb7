//! Memory contexts the extension manages itself: a scratch context reset after each change of a
//! batch, so memory stays bounded for any batch size.

use pgrx::memcxt::PgMemoryContexts;

/// A memory context whose contents are thrown away by `reset`.
pub struct Scratch(PgMemoryContexts);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        Scratch(PgMemoryContexts::new(name))
    }

    /// Run `f` with this context current. What `f` allocates there must not be used after the
    /// next `reset`: copy results out (as Rust values, or into the answer context) first.
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        // SAFETY: the context is valid until dropped; the previous context is restored after `f`.
        unsafe { self.0.switch_to(|_| f()) }
    }

    /// Free everything allocated in the context.
    pub fn reset(&mut self) {
        // SAFETY: callers copy out what they keep before resetting (see `run`).
        unsafe { self.0.reset() };
    }
}
