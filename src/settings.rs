//! The extension's settings (GUCs), registered when the library loads.

use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `inventory_sync.max_clock_skew`, in seconds; -1 turns the guard off.
pub static MAX_CLOCK_SKEW: GucSetting<i32> = GucSetting::<i32>::new(300);

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
}
