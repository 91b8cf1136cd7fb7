//! inventory_sync: the database as the conflict-resolution engine for offline-first sync.
//!
//! The layers, each importing only those below it (checked by `scripts/layout.py`):
//! - `api`: the SQL-facing functions (`#[pg_extern]` only);
//! - `batch`: `sync_push`, a whole upload with one outcome per change;
//! - `feed`: `sync_pull`, the change feed and its cursor;
//! - `write`: the one write path every table goes through;
//! - `catalog`: tracked tables and merge policies, described and cached;
//! - `pg`: the PostgreSQL interface, the only home of `unsafe`;
//! - `error`, `settings`: raising errors; the GUCs.
//!
//! The pure rules, checks, cursor format and SQL text live in the `inventory_sync_core` crate
//! (`core/`), which has no pgrx in its dependency tree.

mod api;
mod batch;
mod catalog;
mod error;
mod feed;
mod pg;
mod settings;
mod write;

#[cfg(any(test, feature = "pg_test"))]
mod tests;

::pgrx::pg_module_magic!(name, version);

// Tables, indexes and comments live in sql/*.sql, not in Rust strings: schema.sql before the
// functions, functions.sql (their comments, and what refers to them) after.
pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/functions.sql", name = "functions", finalize);

#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    error::no_backtraces();
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
