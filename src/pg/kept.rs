//! Statements planned once and kept (`SPI_keepplan`), as PL/pgSQL does for its statements:
//! re-planning on every call would roughly halve the throughput of a call that is otherwise one
//! index probe and one row write. PostgreSQL's plan cache revalidates a kept plan when a table it
//! uses changes, so a kept plan never runs against a stale table definition.
//!
//! Every statement is prepared with `prepare_mut`, even the reads: SPI then takes a fresh
//! snapshot for each statement at READ COMMITTED, which is what lets the conflict path see the
//! row version that beat us.

use std::cell::OnceCell;

use pgrx::datum::{DatumWithOid, FromDatum, IntoDatum};
use pgrx::pg_sys::PgOid;
use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData, SpiTupleTable};

/// A statement answering one value, prepared on first use in this backend and kept.
pub struct Kept {
    sql: String,
    types: Vec<PgOid>,
    plan: OnceCell<OwnedPreparedStatement>,
}

impl Kept {
    pub fn new(sql: String, types: Vec<PgOid>) -> Self {
        Kept { sql, types, plan: OnceCell::new() }
    }

    fn plan(&self, client: &SpiClient<'_>) -> &OwnedPreparedStatement {
        match self.plan.get() {
            Some(plan) => plan,
            None => {
                let prepared = client
                    .prepare_mut(self.sql.as_str(), &self.types)
                    .expect("inventory_sync: preparing a built-in statement failed")
                    .keep();
                self.plan.get_or_init(|| prepared)
            }
        }
    }

    /// Run the statement and answer all its rows.
    pub fn run_all<'conn>(&self, client: &mut SpiClient<'conn>, args: &[DatumWithOid<'_>]) -> SpiTupleTable<'conn> {
        client.update(self.plan(client), None, args).expect("inventory_sync: executing a built-in statement failed")
    }

    /// Run a statement that only reads, without claiming a transaction id: as a hot standby
    /// requires.
    pub fn select_all<'conn>(&self, client: &SpiClient<'conn>, args: &[DatumWithOid<'_>]) -> SpiTupleTable<'conn> {
        client.select(self.plan(client), None, args).expect("inventory_sync: executing a built-in statement failed")
    }

    /// Run the statement; its first row's first column, or None when it returned no row.
    pub fn run<T: FromDatum + IntoDatum>(&self, client: &mut SpiClient<'_>, args: &[DatumWithOid<'_>]) -> Option<T> {
        let table = self.run_all(client, args);
        if table.is_empty() {
            None
        } else {
            table.first().get_one::<T>().expect("inventory_sync: unexpected answer column type")
        }
    }
}

/// Reading a column of a row a built-in statement answered. A type mismatch is a bug in the
/// extension's own SQL: it fails loudly (an internal error naming the column) instead of
/// reading as NULL. NULL itself is `None`.
pub trait Row {
    fn value<T: FromDatum + IntoDatum>(&self, ordinal: usize) -> Option<T>;
}

impl Row for SpiHeapTupleData<'_> {
    fn value<T: FromDatum + IntoDatum>(&self, ordinal: usize) -> Option<T> {
        self.get::<T>(ordinal)
            .unwrap_or_else(|e| panic!("inventory_sync: column {ordinal} of a built-in statement: {e}"))
    }
}

impl Row for SpiTupleTable<'_> {
    fn value<T: FromDatum + IntoDatum>(&self, ordinal: usize) -> Option<T> {
        self.get::<T>(ordinal)
            .unwrap_or_else(|e| panic!("inventory_sync: column {ordinal} of a built-in statement: {e}"))
    }
}

/// The first column of the first row of a built-in statement run once (not kept: for statements
/// of administration and of a pull's set-up); None when it answers no row or NULL.
pub fn select_one<T: FromDatum + IntoDatum>(
    client: &SpiClient<'_>,
    statement: &str,
    args: &[DatumWithOid<'_>],
) -> Option<T> {
    let rows = client
        .select(statement, None, args)
        .unwrap_or_else(|e| panic!("inventory_sync: a built-in statement failed: {e}: {statement}"));
    if rows.is_empty() {
        return None;
    }
    rows.first().value(1)
}
