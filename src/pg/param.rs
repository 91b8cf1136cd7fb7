//! Statement parameters. A `Param<'a>` is a datum of a given type, or NULL; `'a` is how long its
//! memory lives (`'static` for values passed by value, the SPI connection for values converted
//! inside it), so a bound parameter can never outlive what it points to.

use std::marker::PhantomData;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;

#[derive(Debug, Clone, Copy)]
pub struct Param<'a> {
    datum: Option<pg_sys::Datum>,
    oid: pg_sys::Oid,
    memory: PhantomData<&'a ()>,
}

impl<'a> Param<'a> {
    /// SAFETY (for the callers in this module tree): `datum` must be a valid datum of type `oid`
    /// whose memory lives for `'a`.
    pub(super) unsafe fn from_datum(datum: Option<pg_sys::Datum>, oid: pg_sys::Oid) -> Param<'a> {
        Param { datum, oid, memory: PhantomData }
    }

    /// The parameter bound to a statement, for as long as the parameter is borrowed.
    pub fn bind(&self) -> DatumWithOid<'_> {
        match self.datum {
            // SAFETY: the datum is of type `oid` and lives for 'a, which outlives this borrow.
            Some(d) => unsafe { DatumWithOid::new(d, self.oid) },
            None => DatumWithOid::null_oid(self.oid),
        }
    }

    pub fn datum(&self) -> Option<pg_sys::Datum> {
        self.datum
    }
}

impl Param<'static> {
    /// A bigint, passed by value.
    pub fn int8(value: i64) -> Param<'static> {
        Param { datum: Some(pg_sys::Datum::from(value)), oid: pg_sys::INT8OID, memory: PhantomData }
    }
}

/// An OID typed as `regclass` (passed by value).
pub fn regclass(relid: pg_sys::Oid) -> DatumWithOid<'static> {
    // SAFETY: an OID is passed by value.
    unsafe { DatumWithOid::new(pg_sys::Datum::from(relid), pg_sys::REGCLASSOID) }
}
