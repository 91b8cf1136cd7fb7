//! Raising the core's errors (`inventory_sync_core::SyncError`) as PostgreSQL errors: message,
//! detail, hint and SQLSTATE, nothing else.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use inventory_sync_core::SyncError;

/// The PostgreSQL error report of an error.
pub fn report(e: &SyncError) -> ErrorReport {
    let mut report = ErrorReport::new(PgSqlErrorCode::from(e.sqlstate().packed()), e.to_string(), "inventory_sync");
    if let Some(detail) = e.detail() {
        report = report.set_detail(detail);
    }
    if let Some(hint) = e.hint() {
        report = report.set_hint(hint);
    }
    report
}

/// Raise the error as a PostgreSQL ERROR; the current transaction (or subtransaction) aborts, so
/// nothing the call did is kept.
pub fn raise(e: SyncError) -> ! {
    report(&e).report(PgLogLevel::ERROR);
    unreachable!("ereport(ERROR) returned")
}

/// Clients never see Rust backtraces, whatever the server's environment: pgrx attaches one to
/// the DETAIL of every PostgreSQL error that passes through the extension when Rust's backtrace
/// capture is on (`RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` set for the server). Capture is
/// decided once per library, on first use, from `RUST_LIB_BACKTRACE` first: set to 0 before any
/// capture, it is off for this library.
pub fn no_backtraces() {
    // Called from _PG_init, before the extension has run any code that could capture one; the
    // backend is single-threaded.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
}
