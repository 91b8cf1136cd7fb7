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
        // The journal's: for an integer key the key itself, else PostgreSQL's hash of its text. A
        // row's change record and mutation ids are in its key type's side tables, with the key
        // itself (an integer key's as a bigint).
        let (feed, log, own, journal) = match key_type {
            "uuid" => ("changes_uuid", "mutations_uuid", "c.row_id::uuid", "pg_catalog.hashtextextended(c.row_id, 0)"),
            "text" => ("changes_text", "mutations_text", "c.row_id", "pg_catalog.hashtextextended(c.row_id, 0)"),
            _ => ("changes", "mutations", "c.row_id::bigint", "c.row_id::bigint"),
        };
        for (side, expected) in [(feed, own), (log, own), ("conflicts", journal)] {
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
        let sides = ["changes", "mutations", "changes_uuid", "mutations_uuid", "changes_text", "mutations_text"];
        for side in sides.into_iter().filter(|side| ![feed, log].contains(side)) {
            let rows = Spi::get_one_with_args::<i64>(
                &format!("SELECT count(*) FROM inventory_sync.{side} c WHERE c.row_id = $1"),
                &[id.into()],
            )
            .unwrap();
            assert_eq!(rows, Some(0), "{table}: {side}");
        }
    }
    // Purges reach the uuid and text sides too: their aged tombstones and mutation ids, nothing else.
    for side in ["uuid", "text"] {
        exec(&format!("UPDATE inventory_sync.changes_{side} SET changed_at = changed_at - interval '100 days'"));
        exec(&format!("UPDATE inventory_sync.mutations_{side} SET applied_at = applied_at - interval '100 days'"));
    }
    assert_eq!(count("SELECT inventory_sync.purge_tombstones('30 days')"), 2);
    assert_eq!(count("SELECT inventory_sync.purge_mutations('30 days')"), 2);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations_uuid"), 0);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations_text"), 0);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations"), 2);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.changes WHERE op = 'delete'"), 2);
    // The horizon is the newest tombstone purged: the text row's, deleted last.
    let horizon = json("SELECT to_jsonb(p) FROM inventory_sync.purge_horizon p");
    assert_eq!(horizon["row_id"], "Ünïcode laptop ⌘ 42", "{horizon}");
    for (table, id) in [("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), ("text", "Ünïcode laptop ⌘ 42")] {
        Spi::run_with_args(
            "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, '{}', now())",
            &[format!("public.by_{table}").into(), id.into()],
        )
        .unwrap();
        assert_eq!(count(&format!("SELECT count(*) FROM inventory_sync.changes_{table}")), 1);
        // Untrack forgets the table's feed.
        exec(&format!("SELECT inventory_sync.untrack('public.by_{table}')"));
        assert_eq!(count(&format!("SELECT count(*) FROM inventory_sync.changes_{table}")), 0);
    }
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

/// An integer key made a bigint (what a Citus cluster asks of a table with an integer key): the
/// table stays tracked, its side rows stay where they were (the integer key is already their
/// bigint shard key), a retry finds its mutation and an older write still loses.
#[pg_test]
fn an_integer_key_widened_to_bigint_keeps_its_side_rows() {
    setup();
    exec("CREATE TABLE public.widened (id integer PRIMARY KEY, name text, updated_at timestamptz)");
    exec("SELECT inventory_sync.track('public.widened')");
    let first = "SELECT inventory_sync.sync_upsert_in('public.widened', '7', '{\"name\": \"a\"}', \
                 '2024-03-01 10:00+00', 'phone', 'm1')";
    assert_eq!(json(first)["status"], "applied");
    exec("ALTER TABLE public.widened ALTER COLUMN id TYPE bigint");
    let retry = json(first);
    assert_eq!(retry["duplicate"], true, "{retry}");
    let stale = json(
        "SELECT inventory_sync.sync_upsert_in('public.widened', 7::bigint, '{\"name\": \"b\"}', '2024-03-01 09:00+00')",
    );
    assert_eq!(stale["status"], "conflict", "{stale}");
    assert_eq!(
        json("SELECT inventory_sync.sync_delete_in('public.widened', 7::bigint, '2024-03-01 11:00+00')")["status"],
        "applied"
    );
    assert_eq!(
        count("SELECT count(*) FROM inventory_sync.changes WHERE row_id = '7' AND shard_key = 7 AND op = 'delete'"),
        1
    );
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations WHERE row_id = '7' AND shard_key = 7"), 1);
    assert_eq!(
        json("SELECT to_jsonb(key_type::text) FROM inventory_sync.tracked_tables WHERE table_name = 'public.widened'::regclass")
            .as_str(),
        Some("bigint")
    );
}
