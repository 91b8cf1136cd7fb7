//! Catalog lookups through PostgreSQL's syscache: the extension's own tables, table names, kinds
//! and owners.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::spi::quote_qualified_identifier;

/// The OID of the extension's table `inventory_sync.NAME` (InvalidOid when there is none),
/// looked up on every call (two syscache probes), so a re-created extension is never confused
/// with the one a backend first saw.
pub fn own_table_oid(name: &CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups by name.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"inventory_sync".as_ptr(), false);
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    }
}

/// The OID of the default table, `inventory_sync.inventory`.
pub fn default_table_oid() -> pg_sys::Oid {
    own_table_oid(c"inventory")
}

/// The table's name, quoted and schema-qualified, as messages and the journal show it.
pub fn qualified_name(relid: pg_sys::Oid) -> String {
    // SAFETY: syscache lookups; both return NULL for an unknown OID, handled below.
    unsafe {
        let rel = pg_sys::get_rel_name(relid);
        if rel.is_null() {
            return format!("(table {})", relid.to_u32());
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        let nsp = if nsp.is_null() { "?".into() } else { CStr::from_ptr(nsp).to_string_lossy() };
        quote_qualified_identifier(nsp.as_ref(), CStr::from_ptr(rel).to_string_lossy().as_ref())
    }
}

/// What a relation is, as `track` needs to know.
pub struct Relation {
    /// An ordinary or partitioned table.
    pub is_table: bool,
    pub is_temporary: bool,
    /// Its schema's name (None for an unknown schema).
    pub schema: Option<String>,
    /// Whether the current user owns it.
    pub owned: bool,
}

pub fn relation(relid: pg_sys::Oid) -> Relation {
    // The owner check first: for a role that is not a superuser and an OID that names no relation,
    // PostgreSQL's own 42P01.
    let owned = is_owner(relid);
    // SAFETY: syscache lookups of a relation OID and its schema; a relation that is not there is
    // no table, and its persistence is not looked up (that would be an internal error).
    unsafe {
        let kind = pg_sys::get_rel_relkind(relid) as u8;
        let is_table = kind == pg_sys::RELKIND_RELATION || kind == pg_sys::RELKIND_PARTITIONED_TABLE;
        if !is_table {
            return Relation { is_table, is_temporary: false, schema: None, owned };
        }
        let nsp = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        Relation {
            is_table,
            is_temporary: pg_sys::get_rel_persistence(relid) as u8 == pg_sys::RELPERSISTENCE_TEMP,
            schema: (!nsp.is_null()).then(|| CStr::from_ptr(nsp).to_string_lossy().into_owned()),
            owned,
        }
    }
}

/// Whether the current user owns the table (or is a superuser).
pub fn is_owner(relid: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup and a privilege check for the current user.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId())
    }
    // From PostgreSQL 16 on, one owner check for every kind of object.
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, relid, pg_sys::GetUserId())
    }
}

/// The owner of a table.
pub fn table_owner(relid: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: a syscache lookup of the table's pg_class row, released after reading its owner.
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as i32, pg_sys::Datum::from(relid));
        assert!(!tuple.is_null(), "inventory_sync: table {} has no pg_class row", relid.to_u32());
        let owner = (*pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

/// The type of a table's column `attnum` (InvalidOid: no such column).
pub fn column_type(relid: pg_sys::Oid, attnum: i16) -> pg_sys::Oid {
    // SAFETY: get_atttype reads the attribute's syscache entry and answers InvalidOid when there
    // is none.
    unsafe { pg_sys::get_atttype(relid, attnum) }
}
