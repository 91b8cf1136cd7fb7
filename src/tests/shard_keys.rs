// Shard keys: every side row of a row (its change record, its mutation ids, its journal
// entries) carries the row's shard key, which a Citus cluster distributes those tables by.
// Included into the `tests` schema module (src/tests/mod.rs).

/// Writes to one row of `table` (key `id`): a first upsert with a mutation id, its retry, a stale
/// upsert (journaled) and a delete; answers the retry.
fn side_rows_of(table: &str, id: &str) -> Value {
    let call = |sql: &str| -> Value {
        Spi::get_one_with_args::<pgrx::JsonB>(sql, &[table.into(), id.into()]).unwrap().unwrap().0
    };
    let first = "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, '{\"name\": \"a\"}', \
                 '2024-03-01 10:00+00', 'phone', 'm1')";
    assert_eq!(call(first)["status"], "applied");
    let retry = call(first);
    assert_eq!(
        call("SELECT inventory_sync.sync_upsert_in($1::regclass, $2, '{\"name\": \"b\"}', '2024-03-01 09:00+00')")
            ["status"],
        "conflict"
    );
    assert_eq!(
        call("SELECT inventory_sync.sync_delete_in($1::regclass, $2, '2024-03-01 11:00+00')")["status"],
        "applied"
    );
    retry
}

#[pg_test]
fn side_rows_carry_their_rows_shard_key() {
    setup();
    for (table, key_type, id) in [
        ("public.by_bigint", "bigint", "9007199254740993"),
        ("public.by_integer", "integer", "-42"),
        ("public.by_uuid", "uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ("public.by_text", "text", "Ünïcode laptop ⌘ 42"),
    ] {
        exec(&format!("CREATE TABLE {table} (id {key_type} PRIMARY KEY, name text, updated_at timestamptz NOT NULL)"));
        exec(&format!("SELECT inventory_sync.track('{table}')"));
        let retry = side_rows_of(table, id);
        // The retry found its mutation by the shard key it was claimed with.
        assert_eq!(retry["duplicate"], true, "{table}: {retry}");
        // For an integer key the key itself, else PostgreSQL's hash of its text; a uuid row's
        // change record and mutation ids are in the uuid side's tables, with the key itself.
        let hashed = if matches!(key_type, "bigint" | "integer") {
            "c.row_id::bigint"
        } else {
            "pg_catalog.hashtextextended(c.row_id, 0)"
        };
        let (feed, log, own) = if key_type == "uuid" {
            ("changes_uuid", "mutations_uuid", "c.row_id::uuid")
        } else {
            ("changes", "mutations", hashed)
        };
        for (side, expected) in [(feed, own), (log, own), ("conflicts", hashed)] {
            let (rows, right) = Spi::get_two_with_args::<i64, i64>(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE c.shard_key = {expected}) \
                       FROM inventory_sync.{side} c WHERE c.row_id = $1"
                ),
                &[id.into()],
            )
            .unwrap();
            assert_eq!((rows, right), (Some(1), Some(1)), "{table}: {side}");
        }
        // And nowhere else.
        let other = if key_type == "uuid" { ["changes", "mutations"] } else { ["changes_uuid", "mutations_uuid"] };
        for side in other {
            let rows = Spi::get_one_with_args::<i64>(
                &format!("SELECT count(*) FROM inventory_sync.{side} c WHERE c.row_id = $1"),
                &[id.into()],
            )
            .unwrap();
            assert_eq!(rows, Some(0), "{table}: {side}");
        }
    }
    // Purges reach the uuid side too: its aged tombstone and mutation id, nothing else.
    exec("UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '100 days'");
    exec("UPDATE inventory_sync.mutations_uuid SET applied_at = applied_at - interval '100 days'");
    assert_eq!(count("SELECT inventory_sync.purge_tombstones('30 days')"), 1);
    assert_eq!(count("SELECT inventory_sync.purge_mutations('30 days')"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations_uuid"), 0);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations"), 3);
    let horizon = json("SELECT to_jsonb(p) FROM inventory_sync.purge_horizon p");
    assert_eq!(horizon["row_id"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{horizon}");
    json("SELECT inventory_sync.sync_upsert_in('public.by_uuid', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{}', now())");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.changes_uuid"), 1);
    // Untrack forgets a uuid table's feed.
    exec("SELECT inventory_sync.untrack('public.by_uuid')");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.changes_uuid"), 0);
    // The default table's side rows: its id.
    setup();
    let first = "SELECT inventory_sync.sync_upsert(7, '{\"name\": \"a\"}', '2024-03-01 10:00+00', 'phone', 'm1')";
    json(first);
    assert_eq!(json(first)["duplicate"], true);
    upsert(7, r#"{"name": "b"}"#, "2024-03-01 09:00+00");
    for side in ["mutations", "conflicts"] {
        assert_eq!(
            count(&format!("SELECT count(*) FROM inventory_sync.{side} WHERE row_id = '7' AND shard_key = 7")),
            1,
            "{side}"
        );
    }
}
