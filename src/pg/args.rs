//! Argument types that pgrx does not map the way we need: `regclass` and `name` as plain values,
//! and `Jsonb` and `JsonText` (see `jsonb`, `json`) passed through as datums.

use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::{Datum, FromDatum, IntoDatum};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;

use super::json::JsonText;
use super::jsonb::Jsonb;

/// Arguments of these types are read with their `FromDatum`.
macro_rules! argument_type {
    ($($ty:ty),*) => {$(
        // SAFETY: the argument is read as the SQL type its SqlTranslatable declares.
        unsafe impl<'fcx> ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }
                    .unwrap_or_else(|| panic!("argument {index} must not be null"))
            }

            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
    )*};
}

argument_type!(Jsonb, JsonText, RegClass, Name);

// SAFETY: the datum returned is a valid jsonb allocated in the caller's memory context.
unsafe impl BoxRet for Jsonb {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.datum()) }
    }
}

// SAFETY: the datum returned is a valid json (text) allocated in the caller's memory context.
unsafe impl BoxRet for JsonText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        unsafe { fcinfo.return_raw_datum(self.into_datum().expect("a json datum")) }
    }
}

/// A `regclass` argument: the table's OID, resolved by PostgreSQL from the caller's text.
#[derive(Debug, Clone, Copy)]
pub struct RegClass(pub pg_sys::Oid);

pgrx::impl_sql_translatable!(RegClass, "regclass");

impl FromDatum for RegClass {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(RegClass(pg_sys::Oid::from(datum.value() as u32)))
        }
    }
}

impl IntoDatum for RegClass {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(pg_sys::Datum::from(self.0))
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::REGCLASSOID
    }
}

/// A `name` argument (a column name).
#[derive(Debug, Clone)]
pub struct Name(pub String);

pgrx::impl_sql_translatable!(Name, "name");

impl FromDatum for Name {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            None
        } else {
            // SAFETY: a name datum points to a NUL-terminated NameData.
            let cstr = unsafe { core::ffi::CStr::from_ptr(datum.cast_mut_ptr()) };
            Some(Name(cstr.to_string_lossy().into_owned()))
        }
    }
}

impl IntoDatum for Name {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // SAFETY: namein copies the C string into a palloc'd NameData.
        let cstr = std::ffi::CString::new(self.0).ok()?;
        unsafe { pgrx::fcinfo::direct_function_call_as_datum(pg_sys::namein, &[Some(cstr.as_ptr().into())]) }
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::NAMEOID
    }
}
