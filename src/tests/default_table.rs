// Writes to the default table: answers, last-write-wins, clock skew, bad input, search_path safety, kept plans.
// Included into the `tests` schema module (src/tests/mod.rs).

#[pg_test]
fn insert_answers_created() {
    setup();
    let answer = upsert(1, r#"{"name": "Laptops", "stock": 10}"#, "2024-01-01 10:00+00");
    assert_eq!(
        versioned(answer),
        json!({"status": "applied", "id": 1, "created": true,
               "updated_at": "2024-01-01T10:00:00+00:00"})
    );
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 1"), json!({"name": "Laptops", "stock": 10}));
}

#[pg_test]
fn update_merges_key_by_key() {
    setup();
    upsert(1, r#"{"name": "Laptops", "stock": 10, "color": "grey"}"#, "2024-01-01 10:00+00");
    let answer = upsert(1, r#"{"stock": 8, "color": null}"#, "2024-01-01 10:01+00");
    assert_eq!(answer["status"], "applied");
    assert_eq!(answer["created"], false);
    assert_eq!(
        json("SELECT data FROM inventory_sync.inventory WHERE id = 1"),
        json!({"name": "Laptops", "stock": 8, "color": null})
    );
    assert_eq!(
        count("SELECT extract(epoch FROM updated_at)::bigint FROM inventory_sync.inventory WHERE id = 1"),
        1_704_103_260
    );
}

#[pg_test]
fn equal_timestamp_applies() {
    setup();
    upsert(1, r#"{"stock": 10}"#, "2024-01-01 10:00+00");
    assert_eq!(upsert(1, r#"{"stock": 11}"#, "2024-01-01 10:00+00")["status"], "applied");
    assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory WHERE id = 1"), json!(11));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts"), 0);
}

#[pg_test]
fn older_write_conflicts_and_is_journaled() {
    setup();
    upsert(1, r#"{"name": "Laptops", "stock": 10}"#, "2024-01-01 10:00+00");
    upsert(1, r#"{"stock": 15}"#, "2024-01-01 10:05+00");
    let answer = upsert(1, r#"{"stock": 8, "id": 1}"#, "2024-01-01 10:00+00");
    assert_eq!(
        versioned(answer.clone()),
        json!({"status": "conflict", "id": 1, "server_data":
            {"id": 1, "name": "Laptops", "stock": 15, "updated_at": "2024-01-01T10:05:00+00:00"}})
    );
    assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory WHERE id = 1"), json!(15));
    let journal = json(
        "SELECT jsonb_build_object('id', row_id, 'table_name', table_name, 'reason', reason,
                'client_payload', client_payload, 'client_ts', client_ts,
                'server_data', server_data, 'by_me', db_user = current_user,
                'recent', detected_at >= now())
           FROM inventory_sync.conflicts",
    );
    assert_eq!(
        journal,
        json!({"id": "1", "table_name": "inventory_sync.inventory", "reason": "stale",
               "client_payload": {"stock": 8, "id": 1},
               "client_ts": "2024-01-01T10:00:00+00:00",
               "server_data": answer["server_data"], "by_me": true, "recent": true})
    );
}

#[pg_test]
fn reserved_keys_never_land_in_data() {
    setup();
    upsert(5, r#"{"id": 5, "updated_at": "1999-01-01", "stock": 1}"#, "2024-01-01 10:00+00");
    upsert(5, r#"{"id": "5", "stock": 2}"#, "2024-01-01 10:01+00");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 5"), json!({"stock": 2}));
    // updated_at comes from client_ts, never from the payload.
    assert_eq!(
        json("SELECT to_jsonb(updated_at) FROM inventory_sync.inventory WHERE id = 5"),
        json!("2024-01-01T10:01:00+00:00")
    );
}

#[pg_test]
fn numbers_keep_their_precision() {
    setup();
    upsert(1, r#"{"price": 12345678901234567.891, "huge": 1e400, "scale": 1.50}"#, "2024-01-01 10:00+00");
    let text = Spi::get_one::<String>("SELECT data::text FROM inventory_sync.inventory WHERE id = 1").unwrap().unwrap();
    assert!(text.contains("12345678901234567.891"), "{text}");
    assert!(text.contains("\"scale\": 1.50"), "{text}");
    assert_eq!(count("SELECT length((data->>'huge')) FROM inventory_sync.inventory WHERE id = 1"), 401);
}

#[pg_test]
fn clock_skew_rejects_and_journals() {
    setup();
    exec("SET inventory_sync.max_clock_skew = '5min'");
    upsert(1, r#"{"stock": 10}"#, "2024-01-01 10:00+00");
    let answer = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 99}', now() + interval '1 hour')");
    assert_eq!(answer["status"], "rejected");
    assert_eq!(answer["reason"], "clock_skew");
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["max_clock_skew_seconds"], 300);
    assert_eq!(answer["ahead_by_seconds"], 3600.0);
    assert!(answer["server_time"].is_string() && answer["client_ts"].is_string());
    assert!(answer["message"].as_str().unwrap().contains("max_clock_skew"));
    assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory WHERE id = 1"), json!(10));
    assert_eq!(
        json(
            "SELECT jsonb_build_object('reason', reason, 'stock', server_data->'stock')
                FROM inventory_sync.conflicts"
        ),
        json!({"reason": "clock_skew", "stock": 10})
    );
    // Within the margin: applied.
    let near = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 11}', now() + interval '4 min')");
    assert_eq!(near["status"], "applied");
    // A rejected write for a row that does not exist is journaled without server_data.
    let fresh = json("SELECT inventory_sync.sync_upsert(2, '{}', now() + interval '1 day')");
    assert_eq!(fresh["status"], "rejected");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2"), 0);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE row_id = '2' AND server_data IS NULL"), 1);
    // -1 turns the guard off.
    exec("SET inventory_sync.max_clock_skew = -1");
    let off = json("SELECT inventory_sync.sync_upsert(3, '{}', now() + interval '10 years')");
    assert_eq!(off["status"], "applied");
}

#[pg_test]
fn clock_skew_setting_is_validated() {
    let (state, _) = sqlstate_of("SET inventory_sync.max_clock_skew = -2");
    assert_eq!(state, "22023");
    let (state, _) = sqlstate_of("SET inventory_sync.max_clock_skew = 'soon'");
    assert_eq!(state, "22023");
    exec("SET inventory_sync.max_clock_skew = '2h'");
    assert_eq!(Spi::get_one::<String>("SHOW inventory_sync.max_clock_skew").unwrap().unwrap(), "2h");
}

#[pg_test]
fn bad_input_gets_its_sqlstate_and_writes_nothing() {
    setup();
    upsert(1, r#"{"stock": 10}"#, "2024-01-01 10:00+00");
    let cases = [
        ("SELECT inventory_sync.sync_upsert(NULL, '{}', now())", "22004", "id must not be null"),
        ("SELECT inventory_sync.sync_upsert(1, NULL, now())", "22004", "payload must not be null"),
        ("SELECT inventory_sync.sync_upsert(1, '{}', NULL)", "22004", "client_ts must not be null"),
        ("SELECT inventory_sync.sync_upsert(1, '[1]', now())", "22023", "payload must be a JSON object"),
        ("SELECT inventory_sync.sync_upsert(1, '\"x\"', now())", "22023", "payload must be a JSON object"),
        ("SELECT inventory_sync.sync_upsert(1, 'null', now())", "22023", "payload must be a JSON object"),
        ("SELECT inventory_sync.sync_upsert(1, '{}', 'infinity')", "22008", "client_ts must be a finite timestamp"),
        ("SELECT inventory_sync.sync_upsert(1, '{}', '-infinity')", "22008", "client_ts must be a finite timestamp"),
        (
            "SELECT inventory_sync.sync_upsert(1, '{\"id\": 2}', now())",
            "22023",
            "payload key \"id\" does not match the id argument",
        ),
        (
            "SELECT inventory_sync.sync_upsert(1, '{\"id\": \"one\"}', now())",
            "22023",
            "payload key \"id\" does not match the id argument",
        ),
        (
            "SELECT inventory_sync.sync_upsert(1, '{\"id\": true}', now())",
            "22023",
            "payload key \"id\" does not match the id argument",
        ),
        (
            "SELECT inventory_sync.sync_upsert(1, '{\"id\": 1.5}', now())",
            "22023",
            "payload key \"id\" does not match the id argument",
        ),
        ("SELECT inventory_sync.sync_upsert(1, '{not json', now())", "22P02", "invalid input syntax for type json"),
        (
            "SELECT inventory_sync.sync_upsert(1, '{}', 'yesterday-ish')",
            "22007",
            "invalid input syntax for type timestamp with time zone: \"yesterday-ish\"",
        ),
    ];
    for (stmt, want_state, want_msg) in cases {
        let (state, msg) = sqlstate_of(stmt);
        assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
    }
    assert_eq!(json("SELECT data FROM inventory_sync.inventory"), json!({"stock": 10}));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts"), 0);
}

#[pg_test]
fn hostile_search_path_changes_nothing() {
    setup();
    upsert(2, r#"{"stock": 99, "name": "Tablets"}"#, "2024-01-01 10:05+00");
    upsert(1, r#"{"stock": 10, "name": "Laptops"}"#, "2024-01-01 10:05+00");
    // Objects that would hijack unqualified names if public were searched before pg_catalog.
    exec(
        "CREATE FUNCTION public.evil_concat(jsonb, jsonb) RETURNS jsonb
              LANGUAGE sql AS $$ SELECT '{\"hijacked\": true}'::jsonb $$",
    );
    exec("CREATE OPERATOR public.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.evil_concat)");
    exec(
        "CREATE FUNCTION public.evil_le(timestamptz, timestamptz) RETURNS boolean
              LANGUAGE sql AS $$ SELECT true $$",
    );
    exec("CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_le)");
    exec(
        "CREATE FUNCTION public.evil_eq(bigint, bigint) RETURNS boolean
              LANGUAGE sql AS $$ SELECT true $$",
    );
    exec("CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_eq)");
    exec("CREATE TABLE public.inventory (id bigint primary key, data jsonb, updated_at timestamptz)");
    exec("SET search_path = public, pg_catalog");
    // The hijacked operators are really picked up by unqualified SQL in this session...
    assert_eq!(json("SELECT '{}'::jsonb || '{}'::jsonb"), json!({"hijacked": true}));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 1::bigint"), 2);
    // ...but not by the extension's statements.
    let stale = upsert(1, r#"{"stock": 8}"#, "2024-01-01 10:00+00");
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["server_data"]["stock"], 10);
    assert_eq!(stale["server_data"]["id"], 1);
    let newer = upsert(1, r#"{"stock": 12}"#, "2024-01-01 10:10+00");
    assert_eq!(newer["status"], "applied");
    exec("RESET search_path");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 1"), json!({"stock": 12, "name": "Laptops"}));
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 2"), json!({"stock": 99, "name": "Tablets"}));
    assert_eq!(count("SELECT count(*) FROM public.inventory"), 0);
}

#[pg_test]
fn plans_survive_schema_changes() {
    setup();
    upsert(1, r#"{"stock": 1}"#, "2024-01-01 10:00+00");
    // A kept plan is revalidated by PostgreSQL's plan cache when the table changes.
    exec("ALTER TABLE inventory_sync.inventory ADD COLUMN note text");
    assert_eq!(upsert(1, r#"{"stock": 2}"#, "2024-01-01 10:01+00")["status"], "applied");
    assert_eq!(upsert(1, r#"{"stock": 3}"#, "2024-01-01 09:00+00")["status"], "conflict");
}

// ---- tracked tables ----
