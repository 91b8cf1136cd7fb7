//! The extension as PostgreSQL records it: which of its tables pg_dump saves the rows of.

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

/// Mark the extension's table or sequence `relation` (its name) as one whose rows pg_dump saves,
/// with the filter `condition`, as `pg_extension_config_dump` does in the extension's script.
/// PostgreSQL lets that function run only while an extension's script runs: `undistribute()`
/// needs it after Citus took a table out of the extension and gave back a new one, so the
/// extension is marked as being created around that one call, and unmarked after it, also when
/// it fails.
pub fn config_dump(client: &mut SpiClient<'_>, relation: &str, condition: &str) {
    struct Creating {
        was: bool,
        object: pg_sys::Oid,
    }
    impl Drop for Creating {
        fn drop(&mut self) {
            // SAFETY: restores the two globals set below, in this backend.
            unsafe {
                pg_sys::creating_extension = self.was;
                pg_sys::CurrentExtensionObject = self.object;
            }
        }
    }
    // SAFETY: the two globals PostgreSQL sets while an extension's script runs (read and written
    // by this backend only); the extension's OID comes from the syscache and must exist.
    let _creating = unsafe {
        let extension = pg_sys::get_extension_oid(c"inventory_sync".as_ptr(), false);
        let creating = Creating { was: pg_sys::creating_extension, object: pg_sys::CurrentExtensionObject };
        pg_sys::creating_extension = true;
        pg_sys::CurrentExtensionObject = extension;
        creating
    };
    client
        .update(
            "SELECT pg_catalog.pg_extension_config_dump($1::pg_catalog.regclass, $2)",
            None,
            &[relation.into(), condition.into()],
        )
        .unwrap_or_else(|e| panic!("inventory_sync: marking {relation} for pg_dump failed: {e}"));
}
