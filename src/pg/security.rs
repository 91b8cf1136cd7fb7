//! Who may do what: write-right checks with PostgreSQL's own errors, the read-only guard, row-level
//! security, acting as a table's owner, and advisory locks.

use pgrx::pg_sys;

/// Raise PostgreSQL's own `permission denied for table` (42501) unless the current user holds at
/// least one of INSERT, UPDATE and DELETE on the table.
pub fn check_may_write(relid: pg_sys::Oid) {
    let wanted = (pg_sys::ACL_INSERT | pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE) as pg_sys::AclMode;
    // SAFETY: catalog lookups for a table OID and the current user; aclcheck_error raises.
    unsafe {
        if pg_sys::pg_class_aclmask(relid, pg_sys::GetUserId(), wanted, pg_sys::AclMaskHow::ACLMASK_ANY) == 0 {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NO_PRIV,
                pg_sys::ObjectType::OBJECT_TABLE,
                pg_sys::get_rel_name(relid),
            );
        }
    }
}

/// Whether the current user holds SELECT on the table (as `has_table_privilege(…, 'SELECT')`);
/// false for a table that no longer exists.
pub fn may_read(relid: pg_sys::Oid) -> bool {
    let mut missing = false;
    // SAFETY: a catalog lookup for a table OID and the current user; a missing table is reported
    // through `missing`, not raised.
    let result = unsafe {
        pg_sys::pg_class_aclcheck_ext(relid, pg_sys::GetUserId(), pg_sys::ACL_SELECT as pg_sys::AclMode, &mut missing)
    };
    !missing && result == pg_sys::AclResult::ACLCHECK_OK
}

/// Refuse to write in a read-only transaction or on a standby with PostgreSQL's own error
/// (25006), before anything could try to claim a transaction id (which on a standby would be an
/// internal error).
pub fn check_writable(function: &'static std::ffi::CStr) {
    // SAFETY: raises ERROR when the transaction is read-only; returns otherwise.
    unsafe { pg_sys::PreventCommandIfReadOnly(function.as_ptr()) };
}

/// Whether row-level security applies to the current user on this table (it depends on the
/// user, so it is asked on every call).
pub fn rls_enabled(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups for the table and the current user.
    let result = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) };
    result == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
}

/// Run `f` as the user `owner`, as a SECURITY DEFINER function would; the caller's user and
/// security context are restored afterwards, also when an error unwinds through `f`.
pub fn as_user<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    struct Restore(pg_sys::Oid, i32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the user and security context read below.
            unsafe { pg_sys::SetUserIdAndSecContext(self.0, self.1) };
        }
    }
    let (mut user, mut context) = (pg_sys::InvalidOid, 0);
    // SAFETY: reads and switches the current user id; the guard switches back.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let _restore = Restore(user, context);
        pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        f()
    }
}

/// Take the transaction-level advisory lock (`a`, `b`), as `pg_advisory_xact_lock(int4, int4)`.
pub fn advisory_xact_lock(a: i32, b: i32) {
    // SAFETY: pg_advisory_xact_lock(int4, int4) with two int4 datums.
    unsafe {
        pgrx::fcinfo::direct_function_call_as_datum(
            pg_sys::pg_advisory_xact_lock_int4,
            &[Some(pg_sys::Datum::from(a)), Some(pg_sys::Datum::from(b))],
        );
    }
}
