//! Subtransactions and caught errors: what `sync_push` needs to roll back one change (or one group
//! of changes) and go on, as a PL/pgSQL `EXCEPTION` block does.

use pgrx::pg_sys::{self, panic::CaughtError, PgTryBuilder};
use pgrx::PgSqlErrorCode;

use crate::error::raise;
use inventory_sync_core::{SqlState, SyncError};

/// An error's SQLSTATE, message and detail, whoever raised it.
pub fn report_of(e: &CaughtError) -> (SqlState, String, Option<String>) {
    let report = match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
        CaughtError::RustPanic { ereport, .. } => ereport,
    };
    (sqlstate(report.sql_error_code()), report.message().to_string(), report.detail().map(str::to_string))
}

fn sqlstate(code: PgSqlErrorCode) -> SqlState {
    SqlState::from_packed(code as i32)
}

/// A failure inside `in_subtransaction` or `catching`: its SQLSTATE and message, and how to
/// raise it again unchanged.
pub struct Failure {
    pub sqlstate: SqlState,
    pub message: String,
    again: Again,
}

enum Again {
    Raised(Box<CaughtError>),
    Returned(Box<SyncError>),
}

impl Failure {
    /// Raise the failure again, as it was.
    pub fn raise_again(self) -> ! {
        match self.again {
            Again::Raised(caught) => (*caught).rethrow(),
            Again::Returned(e) => raise(*e),
        }
    }
}

/// Run `f`, turning an error it returns or raises (a PostgreSQL error, or a panic) into a
/// `Failure`. The transaction state is not restored: only for code that aborts the transaction
/// anyway on failure (see `in_subtransaction` otherwise).
pub fn catching<R>(f: impl FnOnce() -> Result<R, SyncError>) -> Result<R, Failure> {
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        f().map_err(|e| Failure { sqlstate: e.sqlstate(), message: e.to_string(), again: Again::Returned(Box::new(e)) })
    }))
    .catch_others(|e| {
        let (sqlstate, message, _) = report_of(&e);
        Err(Failure { sqlstate, message, again: Again::Raised(Box::new(e)) })
    })
    .execute()
}

/// Run `f` in a subtransaction: kept if it succeeds, rolled back if it returns an error or raises
/// one, which comes back as a `Failure`.
pub fn in_subtransaction<R>(f: impl FnOnce() -> Result<R, SyncError>) -> Result<R, Failure> {
    // SAFETY: the same sequence as PL/pgSQL's exception blocks: begin, run, then release or roll
    // back, restoring the memory context and resource owner the caller had.
    unsafe {
        let memory = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory);
        let result = catching(f);
        pg_sys::MemoryContextSwitchTo(memory);
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(memory);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}
