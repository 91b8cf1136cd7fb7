//! `JsonText`: `json` values (text) passed through as datums, for `sync_push_json`, whose batch
//! and answer are never built whole as jsonb.

use pgrx::datum::{FromDatum, IntoDatum};
use pgrx::pg_sys;

use super::jsonb::in_answer_context;
use inventory_sync_core::SyncError;

/// A json value as a datum (possibly toasted).
#[derive(Debug, Clone, Copy)]
pub struct JsonText(pg_sys::Datum);

pgrx::impl_sql_translatable!(JsonText, "json");

impl FromDatum for JsonText {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(JsonText(datum))
        }
    }
}

impl IntoDatum for JsonText {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONOID
    }
}

impl JsonText {
    /// The text, detoasted into the current memory context (so it lives as long as the call).
    pub fn text<'a>(self) -> Result<&'a str, SyncError> {
        // SAFETY: a json datum is a varlena holding the text; the detoasted copy (or the datum
        // itself) stays allocated for the rest of the call.
        let bytes = unsafe {
            let varlena = pg_sys::pg_detoast_datum_packed(self.0.cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(varlena);
            std::slice::from_raw_parts(pgrx::varlena::vardata_any(varlena) as *const u8, len)
        };
        std::str::from_utf8(bytes).map_err(|_| SyncError::BadChange("the batch is not UTF-8 text".into()))
    }

    /// A json value from JSON text (which must be valid), in the answer context (see
    /// `jsonb::answers_in`) or else the current one.
    pub fn from_text(text: &str) -> JsonText {
        // SAFETY: copies the bytes into a new text datum.
        let datum = in_answer_context(|| unsafe {
            pg_sys::cstring_to_text_with_len(text.as_ptr() as *const std::ffi::c_char, text.len() as i32)
        });
        JsonText(pg_sys::Datum::from(datum))
    }
}
