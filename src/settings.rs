//! The extension's settings (GUCs), registered when the library loads.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `inventory_sync.max_clock_skew`, in seconds; -1 turns the guard off.
pub static MAX_CLOCK_SKEW: GucSetting<i32> = GucSetting::<i32>::new(300);

/// `inventory_sync.notify`: whether a transaction that changes a table sends a notification on
/// the channel `inventory_sync` when it commits.
pub static NOTIFY: GucSetting<bool> = GucSetting::<bool>::new(false);

pub fn init() {
    GucRegistry::define_int_guc(
        c"inventory_sync.max_clock_skew",
        c"How far (in seconds) a write's client_ts may run ahead of the server clock.",
        c"A write whose client_ts is later than now() plus this margin is rejected with reason \
clock_skew and journaled instead of applied. Accepts units, e.g. '5min'. Range -1 to 2147483647 \
seconds; 0 allows no lead at all; -1 turns the guard off. Default 300 (5 minutes).",
        &MAX_CLOCK_SKEW,
        -1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_bool_guc(
        c"inventory_sync.notify",
        c"Whether a transaction that changes a synced table notifies the channel inventory_sync.",
        c"When on, every write a sync function applies queues a NOTIFY on the channel inventory_sync \
with the payload {\"table\": name, \"position\": the change's feed position} (never the row's \
data), delivered when the transaction commits, once per table and transaction. Off by default: \
a notifying commit takes a lock every other notifying commit waits for.",
        &NOTIFY,
        GucContext::Userset,
        GucFlags::default(),
    );
}
