//! `Jsonb`: jsonb values passed through as PostgreSQL's own binary datums.
//! pgrx's `JsonB` converts every value to text and through serde_json on the way in and again on
//! the way out (jsonb_out, parse, serialize, jsonb_in). Besides the cost, that loses data: serde
//! parses numbers as f64, so `{"price": 12345678901234567.89}` would come back rounded, and
//! `1e400` (a valid jsonb numeric) would not parse at all. A payload is data a client trusts us
//! with, so it goes from the argument straight into the SQL statement, untouched, and the answer
//! built by SQL goes straight back.

use pgrx::datum::{FromDatum, IntoDatum};
use pgrx::fcinfo::direct_function_call;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys;

use pgrx::spi::SpiClient;

use super::param::Param;
use crate::error::raise;
use inventory_sync_core::SyncError;

/// A jsonb value as a datum (possibly toasted; the jsonb functions detoast it themselves).
#[derive(Debug, Clone, Copy)]
pub struct Jsonb(pg_sys::Datum);

pgrx::impl_sql_translatable!(Jsonb, "jsonb");

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        if is_null {
            None
        } else {
            Some(Jsonb(datum))
        }
    }

    /// Values read from SPI live in SPI's memory, freed when the connection closes: copy them out,
    /// into the context of the call that wants them (see `answers_in`). pgrx's default would be
    /// the SPI context's parent, which is the transaction's context: a batch of 100,000 changes
    /// would keep every answer until commit.
    unsafe fn from_datum_in_memory_context(
        mut memory_context: PgMemoryContexts,
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        let copy = |_: &mut PgMemoryContexts| {
            let copy = pg_sys::pg_detoast_datum_copy(datum.cast_mut_ptr());
            Some(Jsonb(pg_sys::Datum::from(copy)))
        };
        match ANSWER_CONTEXT.get() {
            Some(context) => PgMemoryContexts::For(context).switch_to(copy),
            None => memory_context.switch_to(copy),
        }
    }
}

impl IntoDatum for Jsonb {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }

    /// jsonb, or a domain over it (the default table's `data` is `inventory_sync.item_fields`).
    fn is_compatible_with(other: pg_sys::Oid) -> bool {
        // SAFETY: a syscache lookup of a type OID.
        other == pg_sys::JSONBOID || unsafe { pg_sys::getBaseType(other) } == pg_sys::JSONBOID
    }
}

thread_local! {
    static ANSWER_CONTEXT: std::cell::Cell<Option<pg_sys::MemoryContext>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with jsonb values read from SPI, and every answer built (`Jsonb::from_text`,
/// `Jsonb::object`), in the current memory context: the caller's, not SPI's (freed when the
/// connection closes, before PostgreSQL reads the function's result) nor the transaction's. Every
/// SQL function answering jsonb runs its body in it.
pub fn answers_in<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous answer context, also when an error unwinds through `f`.
    struct Restore(Option<pg_sys::MemoryContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ANSWER_CONTEXT.set(self.0);
        }
    }
    // SAFETY: reading the current memory context pointer.
    let here = unsafe { pg_sys::CurrentMemoryContext };
    let _restore = Restore(ANSWER_CONTEXT.replace(Some(here)));
    f()
}

/// Run `f` with the answer context (see `answers_in`) current, when one is set.
pub(crate) fn in_answer_context<R>(f: impl FnOnce() -> R) -> R {
    match ANSWER_CONTEXT.get() {
        // SAFETY: the answer context outlives the call that set it; switched back afterwards.
        Some(context) => unsafe { PgMemoryContexts::For(context).switch_to(|_| f()) },
        None => f(),
    }
}

/// A scalar of an answer built in Rust (see `Jsonb::object`).
#[derive(Debug, Clone, Copy)]
pub enum Scalar<'a> {
    Text(&'a str),
    Int(i64),
    Bool(bool),
    /// Written as `to_jsonb(timestamptz)` writes it, in the session's time zone.
    Timestamptz(pgrx::datum::TimestampWithTimeZone),
    /// A number as `to_jsonb(float8)` writes it (the shortest text that reads back the same).
    Float(f64),
    /// A jsonb object, nested as it is; None is JSON null.
    Object(Option<Jsonb>),
}

impl Scalar<'_> {
    /// As a jsonb scalar; strings are copied into the current memory context.
    ///
    /// SAFETY: call with the memory context the finished jsonb is built in current.
    unsafe fn to_jsonb_value(self) -> pg_sys::JsonbValue {
        // SAFETY: a zeroed JsonbValue is a valid jbvNull; each arm sets a matching type and
        // union member.
        unsafe {
            let mut v: pg_sys::JsonbValue = std::mem::zeroed();
            let string = |v: &mut pg_sys::JsonbValue, ptr: *mut std::ffi::c_char, len: usize| {
                v.type_ = pg_sys::jbvType::jbvString;
                v.val.string = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 { len: len as i32, val: ptr };
            };
            match self {
                Scalar::Text(t) => {
                    let copy = pg_sys::palloc(t.len().max(1)) as *mut std::ffi::c_char;
                    std::ptr::copy_nonoverlapping(t.as_ptr(), copy as *mut u8, t.len());
                    string(&mut v, copy, t.len());
                }
                Scalar::Int(i) => {
                    v.type_ = pg_sys::jbvType::jbvNumeric;
                    v.val.numeric = pg_sys::int64_to_numeric(i);
                }
                Scalar::Bool(b) => {
                    v.type_ = pg_sys::jbvType::jbvBool;
                    v.val.boolean = b;
                }
                Scalar::Timestamptz(ts) => {
                    let datum = ts.into_datum().expect("a timestamptz datum");
                    let text = pg_sys::JsonEncodeDateTime(
                        std::ptr::null_mut(),
                        datum,
                        pg_sys::TIMESTAMPTZOID,
                        std::ptr::null(),
                    );
                    string(&mut v, text, std::ffi::CStr::from_ptr(text).to_bytes().len());
                }
                Scalar::Float(f) => {
                    let text = direct_function_call::<&std::ffi::CStr>(pg_sys::float8out, &[f.into_datum()])
                        .expect("float8out returned NULL");
                    v.type_ = pg_sys::jbvType::jbvNumeric;
                    v.val.numeric = direct_function_call::<pg_sys::Datum>(
                        pg_sys::numeric_in,
                        &[Some(text.as_ptr().into()), Some(pg_sys::InvalidOid.into()), Some((-1i32).into())],
                    )
                    .expect("numeric_in returned NULL")
                    .cast_mut_ptr();
                }
                Scalar::Object(None) => {}
                Scalar::Object(Some(object)) => {
                    // A container value: pushJsonbValue copies its contents in.
                    let jsonb = pg_sys::pg_detoast_datum(object.0.cast_mut_ptr()) as *mut pg_sys::Jsonb;
                    v.type_ = pg_sys::jbvType::jbvBinary;
                    v.val.binary = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_4 {
                        len: pgrx::varsize_any_exhdr(jsonb as *const pg_sys::varlena) as i32,
                        data: &mut (*jsonb).root,
                    };
                }
            }
            v
        }
    }
}

impl Jsonb {
    /// The object of these keys and scalars, built directly as jsonb (what `jsonb_build_object`
    /// does, without looking up each argument's type on every call), in the answer context
    /// (`answers_in`) or else the current one.
    pub fn object(pairs: &[(&str, Scalar<'_>)]) -> Jsonb {
        // SAFETY: pushJsonbValue builds an object from a key and a value per pair; every string it
        // points to is allocated in the current context, which the jsonb lives in.
        in_answer_context(|| unsafe {
            let mut state: *mut pg_sys::JsonbParseState = std::ptr::null_mut();
            pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, std::ptr::null_mut());
            for (key, value) in pairs {
                let mut k = Scalar::Text(key).to_jsonb_value();
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_KEY, &mut k);
                let mut v = value.to_jsonb_value();
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_VALUE, &mut v);
            }
            let object =
                pg_sys::pushJsonbValue(&mut state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, std::ptr::null_mut());
            Jsonb(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(object)))
        })
    }
}

impl Jsonb {
    /// The datum itself.
    pub fn datum(self) -> pg_sys::Datum {
        self.0
    }

    /// `{}`.
    pub fn empty_object() -> Jsonb {
        // SAFETY: jsonb_in on a valid JSON text.
        let datum = in_answer_context(|| unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(c"{}".as_ptr().into())])
        });
        Jsonb(datum.expect("jsonb_in returned NULL"))
    }

    /// A jsonb value from JSON text (which must be valid).
    pub fn from_text(text: &str) -> Jsonb {
        let cstr = std::ffi::CString::new(text).expect("JSON text with a NUL character");
        // SAFETY: jsonb_in on a C string.
        let datum = in_answer_context(|| unsafe {
            pgrx::fcinfo::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(cstr.as_ptr().into())])
        });
        Jsonb(datum.expect("jsonb_in returned NULL"))
    }

    /// The value as JSON text.
    pub fn to_text(self) -> String {
        // SAFETY: self.0 is a valid jsonb datum; jsonb_out returns its text.
        let text = unsafe { direct_function_call::<&core::ffi::CStr>(pg_sys::jsonb_out, &[Some(self.0)]) }
            .expect("jsonb_out returned NULL");
        text.to_string_lossy().into_owned()
    }

    /// The value of key `name`, if this is an object that has it.
    pub fn field(self, name: &str) -> Option<Jsonb> {
        // SAFETY: a jsonb datum and a text datum; NULL when absent or not an object.
        unsafe { direct_function_call::<Jsonb>(pg_sys::jsonb_object_field, &[Some(self.0), name.into_datum()]) }
    }

    /// The text of a string or number (a string without its quotes); None for other kinds.
    pub fn scalar_text(self) -> Option<String> {
        match self.kind().as_str() {
            "string" => match self.to_value() {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            },
            "number" => Some(self.to_text()),
            _ => None,
        }
    }

    /// The number of elements of this array.
    pub fn array_length(self) -> usize {
        // SAFETY: a jsonb array datum.
        let n = unsafe { direct_function_call::<i32>(pg_sys::jsonb_array_length, &[Some(self.0)]) };
        n.unwrap_or(0).max(0) as usize
    }

    /// Element `index` of this array (jsonb arrays are indexed, not walked).
    pub fn array_element(self, index: usize) -> Jsonb {
        // SAFETY: a jsonb array datum and an int4 index within it.
        unsafe {
            direct_function_call::<Jsonb>(pg_sys::jsonb_array_element, &[Some(self.0), (index as i32).into_datum()])
        }
        .expect("jsonb array element within its length is NULL")
    }

    /// A jsonb value from a JSON object.
    pub fn from_object(object: &serde_json::Map<String, serde_json::Value>) -> Jsonb {
        Jsonb::from_serialize(object)
    }

    /// A jsonb value from anything serde writes as JSON (maps of raw values included).
    pub fn from_serialize(value: &impl serde::Serialize) -> Jsonb {
        Jsonb::from_text(&serde_json::to_string(value).expect("a value serializes as JSON"))
    }

    /// The value parsed as a JSON object; an empty one for NULL or any other kind of value.
    pub fn object_or_empty(value: Option<Jsonb>) -> serde_json::Map<String, serde_json::Value> {
        match value.map(Jsonb::to_value) {
            Some(serde_json::Value::Object(object)) => object,
            _ => serde_json::Map::new(),
        }
    }

    /// The value parsed as JSON. serde_json is built with `arbitrary_precision`, so numbers keep
    /// every digit of their jsonb text.
    ///
    /// A value nested deeper than serde_json's limit (128 levels) raises 54001: the extension
    /// never needs to look inside such a value, only at an object's own keys, so this only
    /// refuses payloads that a merge policy or a typed column would have to take apart.
    pub fn to_value(self) -> serde_json::Value {
        match serde_json::from_str(&self.to_text()) {
            Ok(value) => value,
            Err(e) if e.to_string().starts_with("recursion limit exceeded") => raise(SyncError::NestedTooDeep),
            Err(e) => panic!("jsonb_out produced invalid JSON: {e}"),
        }
    }

    /// An object's own keys and values, the values as unparsed JSON text (any depth); None when
    /// the value is not an object.
    pub fn entries(self) -> Option<std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>> {
        serde_json::from_str(&self.to_text()).ok()
    }

    /// The value as JSON text, unparsed (any depth).
    pub fn to_raw(self) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(self.to_text()).expect("jsonb_out produced invalid JSON")
    }

    /// jsonb's name for the value's type: object, array, string, number, boolean or null.
    pub fn kind(self) -> String {
        // SAFETY: self.0 is a valid jsonb datum; jsonb_typeof is strict and never returns NULL.
        unsafe { direct_function_call::<String>(pg_sys::jsonb_typeof, &[Some(self.0)]) }
            .expect("jsonb_typeof returned NULL")
    }

    /// The payload's reserved `id` key. Only called on objects.
    pub fn id_key(self) -> (Option<String>, Option<String>) {
        let key = "id".into_datum();
        let Some(field) = self.field("id") else { return (None, None) };
        // SAFETY: a jsonb object datum and a text datum.
        let text = unsafe { direct_function_call::<String>(pg_sys::jsonb_object_field_text, &[Some(self.0), key]) };
        (Some(field.kind()), text)
    }
}

impl Jsonb {
    /// An object's own keys, less those in `skip`, as a `text[]` parameter allocated in the
    /// memory of the SPI connection `client`. The keys are walked without reading any value.
    pub fn keys_param<'c>(self, _client: &SpiClient<'c>, skip: &[&str]) -> Param<'c> {
        use pg_sys::JsonbIteratorToken::{WJB_DONE, WJB_KEY};
        // SAFETY: a jsonb datum, detoasted; the iterator walks its top level (skipNested) and
        // every key it yields points into the detoasted value; the array and its texts are
        // palloc'd in the current memory context, SPI's, which lives as long as the connection.
        unsafe {
            let jsonb = pg_sys::pg_detoast_datum(self.0.cast_mut_ptr()) as *mut pg_sys::Jsonb;
            let mut it = pg_sys::JsonbIteratorInit(&mut (*jsonb).root);
            let mut value: pg_sys::JsonbValue = std::mem::zeroed();
            let mut keys: Vec<pg_sys::Datum> = Vec::new();
            loop {
                match pg_sys::JsonbIteratorNext(&mut it, &mut value, true) {
                    WJB_DONE => break,
                    WJB_KEY => {
                        let s = value.val.string;
                        let bytes = std::slice::from_raw_parts(s.val as *const u8, s.len as usize);
                        if !skip.iter().any(|k| k.as_bytes() == bytes) {
                            keys.push(pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(s.val, s.len)));
                        }
                    }
                    _ => {}
                }
            }
            let array = pg_sys::construct_array(
                keys.as_mut_ptr(),
                keys.len() as i32,
                pg_sys::TEXTOID,
                -1,
                false,
                b'i' as std::ffi::c_char,
            );
            Param::from_datum(Some(pg_sys::Datum::from(array)), pg_sys::TEXTARRAYOID)
        }
    }
}
