// sync_pull arguments.
// Included into the `tests` schema module (src/tests/mod.rs).

fn pull(since: Option<&str>, lim: i32) -> Value {
    Spi::get_one_with_args::<pgrx::JsonB>("SELECT inventory_sync.sync_pull($1, $2)", &[since.into(), lim.into()])
        .unwrap()
        .unwrap()
        .0
}

#[pg_test]
fn pull_refuses_bad_arguments() {
    setup();
    // A transaction's own changes are above its snapshot's horizon, so a pull inside the
    // writing transaction (as every #[pg_test] is) sees none of them; the feed itself is
    // tested with committed transactions in pg_regress and the concurrency tests.
    upsert(1, "{}", "2024-03-01 10:00+00");
    // The cursor: the start position ("3:0:1:0:0:": purge epoch 0, never purged; era 1, which
    // the write started; position 0, table 0, no row).
    assert_eq!(pull(None, 10), json!({"changes": [], "cursor": "MzowOjE6MDowOg", "has_more": false}));
    for (stmt, want) in [
        ("SELECT inventory_sync.sync_pull('not a cursor')", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, 0)", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, 100001)", "22023"),
        ("SELECT inventory_sync.sync_pull(NULL, NULL)", "22004"),
        ("SELECT inventory_sync.purge_tombstones('-1 day')", "22023"),
        ("SELECT inventory_sync.purge_tombstones(NULL)", "22004"),
    ] {
        let (state, _) = sqlstate_of(stmt);
        assert_eq!(state, want, "{stmt}");
    }
}

// ---- beyond last-write-wins ----
