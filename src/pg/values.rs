//! Payload values (JSON) to column values, by each column type's own input function, so the result
//! is exactly what `INSERT … VALUES ('…')` would store: domains check their constraints, varchar
//! its length, enums their labels. A value that does not fit fails with PostgreSQL's own SQLSTATE
//! and a message that names the column.

use pgrx::datum::{IntoDatum, TimestampWithTimeZone};
use pgrx::fcinfo::direct_function_call;
use pgrx::pg_sys::{self, PgTryBuilder};
use pgrx::spi::SpiClient;

use super::param::Param;
use super::subxact::report_of;
use inventory_sync_core::values::Shape;
use inventory_sync_core::{SqlState, SyncError};

/// Convert `text` with the input function of type `typid` (with `typmod`), for `column` of
/// `table`. `None` is SQL NULL, still passed through the input function so a domain's NOT NULL
/// and CHECK constraints apply.
/// The value is allocated in the memory of the SPI connection `client`.
pub fn to_param<'c>(
    _client: &SpiClient<'c>,
    text: Option<&str>,
    typid: pg_sys::Oid,
    typmod: i32,
    column: &str,
    table: &str,
) -> Result<Param<'c>, SyncError> {
    let cstr = match text {
        Some(t) => Some(std::ffi::CString::new(t).map_err(|_| SyncError::BadValue {
            column: column.to_string(),
            table: table.to_string(),
            sqlstate: SqlState::UNTRANSLATABLE_CHARACTER,
            cause: "text contains a NUL character".to_string(),
            detail: None,
        })?),
        None => None,
    };
    let is_null = cstr.is_none();
    PgTryBuilder::new(|| {
        let mut typinput = pg_sys::InvalidOid;
        let mut typioparam = pg_sys::InvalidOid;
        // SAFETY: plain catalog lookups and a call of the type's input function with a valid
        // C string (or NULL, which input functions are specified to accept).
        let datum = unsafe {
            pg_sys::getTypeInputInfo(typid, &mut typinput, &mut typioparam);
            let ptr = cstr.as_ref().map_or(std::ptr::null_mut(), |c| c.as_ptr().cast_mut());
            pg_sys::OidInputFunctionCall(typinput, ptr, typioparam, typmod)
        };
        // SAFETY: a datum of type `typid`, palloc'd in SPI's memory, which lives for 'c.
        Ok(unsafe { Param::from_datum(if is_null { None } else { Some(datum) }, typid) })
    })
    .catch_others(|e| {
        let (sqlstate, message, detail) = report_of(&e);
        Err(SyncError::BadValue {
            column: column.to_string(),
            table: table.to_string(),
            sqlstate,
            cause: message,
            detail,
        })
    })
    .execute()
}

/// The canonical text of a datum of type `typid` (its output function): equal values of a type
/// have equal canonical text (`A0EE…` and `a0ee…` as uuid, `007` and `7` as integer).
pub fn canonical_text(datum: pg_sys::Datum, typid: pg_sys::Oid) -> String {
    let mut typoutput = pg_sys::InvalidOid;
    let mut is_varlena = false;
    // SAFETY: catalog lookup and the type's output function on a datum of that type.
    unsafe {
        pg_sys::getTypeOutputInfo(typid, &mut typoutput, &mut is_varlena);
        let out = pg_sys::OidOutputFunctionCall(typoutput, datum);
        std::ffi::CStr::from_ptr(out).to_string_lossy().into_owned()
    }
}

/// How a column of type `typid` takes a JSON value.
pub fn shape_of(typid: pg_sys::Oid) -> Shape {
    let base = base_type(typid);
    if base == pg_sys::JSONOID || base == pg_sys::JSONBOID {
        Shape::Json
    // SAFETY: a syscache lookup of a type OID.
    } else if unsafe { pg_sys::get_element_type(base) } != pg_sys::InvalidOid {
        Shape::Array
    } else {
        Shape::Scalar
    }
}

/// The type a domain is over (the type itself when it is no domain).
pub fn base_type(typid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of a type OID.
    unsafe { pg_sys::getBaseType(typid) }
}

/// Numeric types (and domains over them): what a `delta` field may have.
pub fn is_numeric(typid: pg_sys::Oid) -> bool {
    [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID, pg_sys::NUMERICOID, pg_sys::FLOAT4OID, pg_sys::FLOAT8OID]
        .contains(&base_type(typid))
}

/// A timestamptz from its text, read as a `timestamptz` literal is (an invalid text raises
/// PostgreSQL's own error).
pub fn timestamptz_in(text: &std::ffi::CStr) -> Option<TimestampWithTimeZone> {
    // SAFETY: timestamptz_in(cstring, oid, int4) on a valid C string; errors are PostgreSQL's.
    unsafe {
        direct_function_call::<TimestampWithTimeZone>(
            pg_sys::timestamptz_in,
            &[Some(text.as_ptr().into()), pg_sys::InvalidOid.into_datum(), (-1i32).into_datum()],
        )
    }
}

/// A table's OID from its name, resolved as a `regclass` literal is (an unknown table raises
/// 42P01).
pub fn regclass_in(name: &std::ffi::CStr) -> Option<pg_sys::Oid> {
    // SAFETY: regclassin(cstring) on a valid C string.
    unsafe { direct_function_call::<pg_sys::Oid>(pg_sys::regclassin, &[Some(name.as_ptr().into())]) }
}
