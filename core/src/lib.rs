//! The pure core of inventory_sync: everything that needs no PostgreSQL server, so it is tested
//! with plain `#[test]`s and proptest in milliseconds, and fuzzed (the `fuzz/` crate depends on
//! this one). Nothing here links against PostgreSQL; `cargo tree -p inventory_sync_core` shows no
//! pgrx.
//!
//! - `rules`: the clock-skew guard, the payload's `id` key, argument checks;
//! - `merge`: the per-field merge policies and the tie/clock rule;
//! - `change`: the shape of one change of a `sync_push` batch;
//! - `batch_text`: the changes of a batch given as JSON text (`sync_push_json`);
//! - `cursor`: the pull cursor's format;
//! - `values`: payload values as the text a column type reads;
//! - `tracking`: which tables can be synced;
//! - `version`: row versions and what a write's `base_version` names;
//! - `sql`: the SQL text of every statement the extension runs;
//! - `error`, `sqlstate`: every error a caller can provoke, with its SQLSTATE.

pub mod batch_text;
pub mod change;
pub mod cursor;
pub mod error;
pub mod merge;
pub mod rules;
pub mod sql;
pub mod sqlstate;
pub mod tracking;
pub mod values;
pub mod version;

pub use error::SyncError;
pub use sqlstate::SqlState;
