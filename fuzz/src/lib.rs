//! The fuzz targets' shared code. The code under test is the pgrx-free core crate
//! (`inventory_sync_core`, ../core), used as it is: its modules are re-exported under the names
//! the targets use.
#![allow(dead_code)]

pub mod gen;

pub use inventory_sync_core::{change, cursor, error, merge, rules};

/// `Shape`, `input_text`, `array_literal`: payload values as column input text.
pub use inventory_sync_core::values as convert;

/// Known bugs (KNOWN_BUGS.md; each has its strict-xfail test in tests/known_bugs.rs). While
/// fuzzing, a target skips the inputs of these, so it goes on looking for new bugs; take a name
/// out once its bug is fixed.
pub const KNOWN_BUGS: &[&str] = &[];

pub fn skip_known_bug(name: &str) -> bool {
    KNOWN_BUGS.contains(&name)
}
