// Mutation ids (a retried write applies once) and sync_push outcomes.
// Included into the `tests` schema module (src/tests/mod.rs).

#[pg_test]
fn mutations_apply_once() {
    setup();
    let first = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 10}', '2024-03-01 10:00+00', 'phone-a', 'm1')");
    assert_eq!(first["status"], "applied");
    // The retry carries the same mutation: the first answer again, nothing applied.
    let again = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 99}', '2024-03-01 10:30+00', 'phone-a', 'm1')");
    let mut expected = first.clone();
    expected["duplicate"] = json!(true);
    assert_eq!(again, expected);
    assert_eq!(json("SELECT data FROM inventory_sync.inventory"), json!({"stock": 10}));
    // Another device may use the same mutation id.
    assert_eq!(
        json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 11}', '2024-03-01 10:01+00', 'phone-b', 'm1')")
            ["status"],
        "applied"
    );
    // Deletes, conflicts and rejections are remembered too.
    let gone = json("SELECT inventory_sync.sync_delete(1, '2024-03-01 10:02+00', 'phone-a', 'm2')");
    assert_eq!(json("SELECT inventory_sync.sync_delete(1, '2024-03-01 10:02+00', 'phone-a', 'm2')")["duplicate"], true);
    assert_eq!(gone["deleted"], true);
    let lost = json("SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 09:00+00', 'phone-a', 'm3')");
    assert_eq!(lost["status"], "conflict");
    assert_eq!(
        json("SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 09:00+00', 'phone-a', 'm3')")["status"],
        "conflict"
    );
    assert_eq!(
        count("SELECT count(*) FROM inventory_sync.conflicts WHERE mutation_id = 'm3'"),
        1,
        "a duplicate is not journaled again"
    );
    let (state, msg) = sqlstate_of("SELECT inventory_sync.sync_upsert(1, '{}', now(), NULL, 'm9')");
    assert_eq!((state.as_str(), msg.as_str()), ("22023", "mutation_id requires client_id"));
    // Another database user cannot replay (or read) this user's mutations.
    exec("CREATE ROLE isync_other");
    exec("GRANT SELECT, INSERT, UPDATE ON inventory_sync.inventory TO isync_other");
    exec("SET ROLE isync_other");
    let (state, _) = sqlstate_of("SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 11:00+00', 'phone-a', 'm1')");
    assert_eq!(state, "42501");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations"), 0);
    exec("RESET ROLE");
    // Purged mutation ids are applied again.
    assert_eq!(count("SELECT inventory_sync.purge_mutations('1 day')"), 0);
    exec("UPDATE inventory_sync.mutations SET applied_at = applied_at - interval '2 days'");
    assert_eq!(count("SELECT inventory_sync.purge_mutations('1 day')"), 4);
    assert_eq!(
        json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 5}', '2024-03-01 12:00+00', 'phone-a', 'm1')")
            ["status"],
        "applied"
    );
}

fn push(changes: Value, atomic: bool) -> Value {
    Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_push($1, $2)",
        &[pgrx::JsonB(changes).into(), atomic.into()],
    )
    .unwrap()
    .unwrap()
    .0
}

#[pg_test]
fn push_answers_each_change_in_order() {
    tracked_products();
    let outcomes = push(
        json!([
            {"id": 2, "payload": {"n": 1}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 1, "payload": {"n": 1}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 1, "payload": {"n": 2}, "client_ts": "2024-03-01 10:01+00"},
            {"id": 1, "payload": {"n": 3}, "client_ts": "2024-03-01 10:00:30+00"},
            {"op": "delete", "id": 2, "client_ts": "2024-03-01 10:02+00"},
            {"table": "public.products", "id": P1, "payload": {"name": "x", "stock": "many"}, "client_ts": "2024-03-01 10:00+00"},
            {"table": "public.products", "id": P1, "payload": {"name": "x"}, "client_ts": "2024-03-01 10:00+00"},
            {"table": "no_such", "id": "1", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"table": "elsewhere.public.products", "id": "1", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "payload": {}, "client_ts": "not a time"},
            {"id": 3, "payload": [], "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "client_ts": "2024-03-01 10:00+00"},
            {"op": "delete", "id": 3, "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"op": "merge", "id": 3, "client_ts": "2024-03-01 10:00+00"},
            {"id": "three", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "payload": {}, "client_ts": "2024-03-01 10:00+00", "extra": 1},
            "not an object",
        ]),
        false,
    );
    let status: Vec<&str> = outcomes.as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(
        status,
        [
            "applied", "applied", "applied", "conflict", "applied", "error", "applied", "error", "error", "error",
            "error", "error", "error", "error", "error", "error", "error"
        ]
    );
    let states: Vec<&str> = outcomes.as_array().unwrap().iter().filter_map(|o| o["sqlstate"].as_str()).collect();
    assert_eq!(
        states,
        ["22P02", "42P01", "0A000", "22007", "22023", "22023", "22023", "22023", "22023", "22023", "22023"]
    );
    assert_eq!(outcomes[5]["id"], P1);
    assert_eq!(outcomes[14]["message"], "id \"three\" is not a bigint, as the default table's ids are");
    assert_eq!(outcomes[15]["message"], "unknown key \"extra\" in change");
    // Changes to one row applied in the order given; the failed change wrote nothing.
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 1"), json!({"n": 2}));
    assert_eq!(
        json("SELECT jsonb_build_object('name', name, 'stock', stock) FROM products"),
        json!({"name": "x", "stock": 0})
    );
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2 AND deleted"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 3"), 0);
}

/// A feature the server does not support (class 0A, as Citus answers a statement it cannot run)
/// is not one change's fault: the whole call aborts, whatever `atomic` says, and the next call
/// (without the refusal) answers each change as usual.
#[pg_test]
fn a_server_refusal_aborts_the_whole_push() {
    tracked_products();
    exec(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION 'not on this server' USING ERRCODE = 'feature_not_supported'; END $$",
    );
    exec("CREATE TRIGGER refuse BEFORE INSERT ON products FOR EACH ROW EXECUTE FUNCTION refuse()");
    let batch = format!(
        "SELECT inventory_sync.sync_push('[{{\"id\": 1, \"payload\": {{}}, \"client_ts\": \"2024-03-01\"}}, \
         {{\"table\": \"products\", \"id\": \"{P1}\", \"payload\": {{\"name\": \"x\"}}, \"client_ts\": \"2024-03-01\"}}]')"
    );
    let (state, msg) = sqlstate_of(&batch);
    assert_eq!((state.as_str(), msg.as_str()), ("0A000", "not on this server"));
    exec("DROP TRIGGER refuse ON products");
    let statuses: Vec<String> = Spi::get_one::<pgrx::JsonB>(&batch)
        .unwrap()
        .unwrap()
        .0
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["applied", "applied"]);
}

#[pg_test]
fn atomic_push_is_all_or_nothing() {
    setup();
    let (state, msg) = sqlstate_of(
        "SELECT inventory_sync.sync_push('[{\"id\": 1, \"payload\": {\"a\": 1}, \"client_ts\": \"2024-03-01\"},
                                           {\"id\": 2, \"payload\": {}, \"client_ts\": \"soon\"}]', true)",
    );
    assert_eq!(state, "22007");
    assert!(msg.starts_with("change 1: invalid input syntax for type timestamp with time zone"), "{msg}");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory"), 0);
    let ok = push(json!([{"id": 1, "payload": {"a": 1}, "client_ts": "2024-03-01"}]), true);
    assert_eq!(ok[0]["status"], "applied");
    for (arg, want) in [("'{}'", "22023"), ("NULL", "22004")] {
        let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_push({arg})"));
        assert_eq!(state, want, "{arg}");
    }
    assert_eq!(push(json!([]), false), json!([]));
}
