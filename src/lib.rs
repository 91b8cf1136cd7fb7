//! inventory_sync: the database as the conflict-resolution engine for offline-first sync.
//!
//! The modules, one concern each:
//! - `api`: the SQL-facing functions (`#[pg_extern]` only);
//! - `engine`: the one decision flow every table goes through;
//! - `batch`: `sync_push`, a whole upload with one outcome per change;
//! - `feed`: `sync_pull`, the change feed and its cursor;
//! - `rules`: the conflict rules as plain Rust, tested without PostgreSQL;
//! - `sql`: the SQL text of every statement, built from quoted identifiers;
//! - `storage`: statements planned once per backend and kept;
//! - `catalog`: tracked tables, their validation and cached descriptions;
//! - `convert`: payload values to column values;
//! - `types`: argument types (jsonb as a datum, regclass, name);
//! - `error`: the error enum and its SQLSTATEs;
//! - `settings`: the GUCs.

use pgrx::prelude::*;

mod api;
mod batch;
mod catalog;
mod convert;
mod engine;
mod error;
mod merge;
mod feed;
mod rules;
mod settings;
mod sql;
mod storage;
mod types;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!(name, version);

// Tables, indexes and comments live in sql/*.sql, not in Rust strings.
pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/comments.sql", name = "comments", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
}

/// Required by `cargo pgrx test`: one-off set-up and the settings the test cluster runs with.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
