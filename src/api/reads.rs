//! The read function: the change feed.

use pgrx::prelude::*;

use super::respond;
use crate::pg::jsonb::Jsonb;
use inventory_sync_core::SyncError;

/// The changes after the cursor `since` (NULL: from the beginning), at most `lim`, from the
/// default table and every tracked table the caller may read; a change is never skipped.
#[pg_extern(stable, parallel_restricted)]
fn sync_pull(since: default!(Option<String>, "NULL"), lim: default!(Option<i32>, "1000")) -> Jsonb {
    respond(|| {
        let lim = lim.ok_or(SyncError::NullArgument("lim"))?;
        Spi::connect_mut(|client| crate::feed::pull(client, since.as_deref(), lim))
    })
}
