//! Subtransactions and caught errors: what `sync_push` needs to roll back one change (or one group
//! of changes) and go on, as a PL/pgSQL `EXCEPTION` block does.

use std::cell::RefCell;

use pgrx::pg_sys::{self, panic::CaughtError, PgTryBuilder};
use pgrx::{pg_guard, PgSqlErrorCode};

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
    /// The error `f` returned (rather than raised), if that is what failed.
    pub fn returned(self) -> Result<SyncError, Failure> {
        match self.again {
            Again::Returned(e) => Ok(*e),
            again => Err(Failure { again, ..self }),
        }
    }

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

/// What PostgreSQL said of an error raised inside `noting_errors` that a `Failure` does not
/// carry: the name of the constraint it reports (of a CHECK, NOT NULL, foreign key, unique or
/// exclusion constraint, or of a domain's CHECK), and whether a trigger raised it.
#[derive(Debug, Clone)]
pub struct Noted {
    pub sqlstate: SqlState,
    pub constraint: Option<String>,
    pub in_trigger: bool,
}

thread_local! {
    /// The error noted last, and the trigger depth `noting_errors` began at.
    static NOTED: RefCell<(Option<Noted>, i32)> = const { RefCell::new((None, 0)) };
}

/// The depth of nested trigger calls now (PostgreSQL's `pg_trigger_depth()`).
fn trigger_depth() -> i32 {
    // SAFETY: pg_trigger_depth only returns a counter; it reads none of its call's arguments.
    unsafe { pg_sys::pg_trigger_depth(std::ptr::null_mut()).value() as i32 }
}

/// Run `f` (which catches its errors: `in_subtransaction`, or a conversion that answers them)
/// with an error context callback that notes each error raised inside it while PostgreSQL
/// reports it; answers `f`'s result and, if it failed with the SQLSTATE noted last
/// (`sqlstate_of` its error), what was noted.
pub fn noting_errors<R, E>(
    f: impl FnOnce() -> Result<R, E>,
    sqlstate_of: impl Fn(&E) -> SqlState,
) -> (Result<R, E>, Option<Noted>) {
    // A write inside a trigger of another write notes its own errors, and puts back the outer's.
    let outer = NOTED.with(|n| n.replace((None, trigger_depth())));
    let mut frame = pg_sys::ErrorContextCallback {
        previous: std::ptr::null_mut(),
        callback: Some(note),
        arg: std::ptr::null_mut(),
    };
    // SAFETY: the frame lives on this stack until it is taken off the list again below; an error
    // inside `f` is caught there, and PostgreSQL's jumps out of it stop inside `f`'s boundaries,
    // which put back the list as they found it (with this frame in it).
    unsafe {
        frame.previous = pg_sys::error_context_stack;
        pg_sys::error_context_stack = &mut frame;
    }
    let result = f();
    // SAFETY: as above; the list is what it was before this frame went on it.
    unsafe { pg_sys::error_context_stack = frame.previous };
    let noted = NOTED.with(|n| n.replace(outer).0);
    let noted = match &result {
        Err(e) => noted.filter(|n| n.sqlstate == sqlstate_of(e)),
        Ok(_) => None,
    };
    (result, noted)
}

/// The error context callback of `noting_errors`: PostgreSQL calls it while it reports an error
/// (or a notice), with the error's data on top of its stack.
#[pg_guard]
unsafe extern "C-unwind" fn note(_arg: *mut std::ffi::c_void) {
    let sqlstate = SqlState::from_packed(pg_sys::geterrcode());
    // Notices and warnings are not failures.
    if ["00", "01", "02"].contains(&&sqlstate.text()[..2]) {
        return;
    }
    // SAFETY: CopyErrorData copies the error being reported; it must not allocate in the error
    // context, the current one here. The copy is read and freed at once.
    let constraint = unsafe {
        let context = pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
        let data = pg_sys::CopyErrorData();
        pg_sys::MemoryContextSwitchTo(context);
        let name = (*data).constraint_name;
        let constraint = (!name.is_null()).then(|| std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned());
        pg_sys::FreeErrorData(data);
        constraint
    };
    let depth = trigger_depth();
    NOTED.with(|n| {
        let mut n = n.borrow_mut();
        n.0 = Some(Noted { sqlstate, constraint, in_trigger: depth > n.1 });
    });
}
