//! The SQL-facing functions, `#[pg_extern]` only: each checks that its arguments are there, hands
//! them down (to `write`, `batch`, `feed` or `catalog`) and answers through `respond`. They run
//! with the caller's rights (SECURITY INVOKER): table grants and row-level security apply.
//!
//! - `writes`: sync_upsert, sync_delete, sync_upsert_in, sync_delete_in, sync_push;
//! - `reads`: sync_pull;
//! - `admin`: track, untrack, set_policy, purge_tombstones, purge_mutations, distribute.

mod admin;
mod reads;
mod writes;

use crate::error::raise;
use crate::pg::jsonb::answers_in;
use inventory_sync_core::SyncError;

/// Every SQL function answers through this: `f` runs with its answer built in the caller's memory
/// context (not SPI's, freed before PostgreSQL reads the answer, nor the transaction's), and an
/// error it returns is raised with its SQLSTATE, detail and hint. No function can forget either.
fn respond<T>(f: impl FnOnce() -> Result<T, SyncError>) -> T {
    answers_in(f).unwrap_or_else(|e| raise(e))
}
