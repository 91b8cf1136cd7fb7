//! The extension's pure code, compiled without pgrx for the fuzz targets:
//! - `merge` and `rules`: src/merge.rs and src/rules.rs themselves (`#[path]`); rules.rs's
//!   `crate::error::SyncError` resolves to the stand-in in `error`;
//! - `cursor` and `convert`: items copied out of src/feed.rs and src/convert.rs by build.rs,
//!   since those files also use pgrx.
#![allow(dead_code)]

pub mod error;
pub mod gen;

#[path = "../../src/merge.rs"]
pub mod merge;

#[path = "../../src/rules.rs"]
pub mod rules;

/// `Position` (the pull cursor) from src/feed.rs.
pub mod cursor {
    include!(concat!(env!("OUT_DIR"), "/cursor.rs"));
}

/// `Shape`, `input_text`, `array_literal` from src/convert.rs.
pub mod convert {
    include!(concat!(env!("OUT_DIR"), "/convert.rs"));
}

/// Known bugs (KNOWN_BUGS.md; each has its strict-xfail test in tests/known_bugs.rs). While
/// fuzzing, a target skips the inputs of these, so it goes on looking for new bugs; take a name
/// out once its bug is fixed.
pub const KNOWN_BUGS: &[&str] = &[];

pub fn skip_known_bug(name: &str) -> bool {
    KNOWN_BUGS.contains(&name)
}
