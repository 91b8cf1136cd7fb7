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
