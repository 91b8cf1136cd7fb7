// sync_push groups: an invalid change in a long batch fails alone.
// Included into the `tests` schema module (src/tests/mod.rs).

#[pg_test]
fn an_invalid_change_in_a_long_batch_fails_alone() {
    setup();
    // More changes than one optimistic group: the group holding the bad change is redone
    // change by change; every other change applies exactly once.
    let changes: Vec<Value> = (1..=150)
        .map(|i| {
            let ts = if i == 100 { "not a time" } else { "2024-03-01 10:00+00" };
            json!({"id": i, "payload": {"n": i}, "client_ts": ts, "client_id": "c", "mutation_id": format!("m{i}")})
        })
        .collect();
    let out = push(Value::Array(changes), false);
    let statuses: Vec<&str> = out.as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "applied").count(), 149);
    assert_eq!(out[99]["status"], "error");
    assert_eq!(out[99]["sqlstate"], "22007");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory"), 149);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations"), 149);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 100"), 0);
}

/// On a single server, push_groups answers one group of every change (invalid ones too), and
/// sync_push_on is sync_push whatever its node key.
#[pg_test]
fn one_server_is_one_push_group() {
    setup();
    let changes = json!([
        {"id": 1, "payload": {"n": 1}, "client_ts": "2024-03-01 10:00+00", "client_id": "c", "mutation_id": "g1"},
        {"id": "not a number", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
        {"table": "no_such_table", "id": 1, "payload": {}, "client_ts": "2024-03-01 10:00+00"},
        {"id": 2, "op": "delete", "client_ts": "2024-03-01 10:00+00"},
    ]);
    let with_batch = |sql: &str| -> Value {
        Spi::get_one_with_args::<pgrx::JsonB>(sql, &[pgrx::JsonB(changes.clone()).into()]).unwrap().unwrap().0
    };
    let groups = with_batch("SELECT inventory_sync.push_groups($1)");
    assert_eq!(groups, json!([{"node_key": null, "indexes": [0, 1, 2, 3]}]));
    let on = with_batch("SELECT inventory_sync.sync_push_on(42, $1)");
    let statuses: Vec<&str> = on.as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["applied", "error", "error", "applied"]);
    // The same batch again through sync_push: the same answers, the mutation a duplicate.
    let again = push(changes, false);
    assert_eq!(again[0]["duplicate"], true);
    assert_eq!(again[1]["sqlstate"], on[1]["sqlstate"]);
    // What is not a batch is refused as sync_push refuses it.
    assert_eq!(sqlstate_of("SELECT inventory_sync.push_groups(NULL)").0, "22004");
    assert_eq!(sqlstate_of("SELECT inventory_sync.push_groups('{}')").0, "22023");
    assert_eq!(sqlstate_of("SELECT inventory_sync.sync_push_on(1, '{}')").0, "22023");
}
