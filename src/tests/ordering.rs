// Who orders a table's writes: the devices' clocks (client_ts, the default) or the server
// (set_ordering(tbl, 'server')): arrival order, client_ts not needed, conflicts only from
// base_version. Included into the `tests` schema module (src/tests/mod.rs).

/// The timestamp an answer stamped, in microseconds since 2000-01-01.
fn stamped(answer: &Value) -> i64 {
    let text = answer["updated_at"].as_str().unwrap_or_else(|| panic!("no updated_at in {answer}"));
    Spi::get_one::<i64>(&format!("SELECT ((extract(epoch FROM '{text}'::timestamptz) - 946684800) * 1000000)::bigint"))
        .unwrap()
        .unwrap()
}

/// On the default table: a write applies whatever its client_ts says (older than the row, none
/// at all, a day ahead of the server), stamped by the server after the row; the clock guard
/// does not apply; base_version still finds conflicts.
#[pg_test]
fn the_server_orders_the_default_table_by_arrival() {
    setup();
    // Written first by a device whose clock ran far ahead.
    exec("SET inventory_sync.max_clock_skew = -1");
    let ahead = upsert(1, r#"{"stock": 10}"#, "2099-01-01 00:00+00");
    exec("SET inventory_sync.max_clock_skew = 300");
    exec("SELECT inventory_sync.set_ordering('inventory_sync.inventory', 'server')");
    let older = upsert(1, r#"{"stock": 9}"#, "2000-01-01 00:00+00");
    assert_eq!(older["status"], "applied", "{older}");
    // After the row's own stamp (which was ahead of the server's clock), by a microsecond.
    assert_eq!(stamped(&older), stamped(&ahead) + 1);
    let none = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 8}', NULL)");
    assert_eq!(none["status"], "applied", "{none}");
    assert_eq!(stamped(&none), stamped(&older) + 1);
    let far = json("SELECT inventory_sync.sync_upsert(2, '{\"stock\": 1}', now() + interval '1 day')");
    assert_eq!(far["status"], "applied", "{far}");
    // A new row takes the server's clock, not the device's day ahead.
    let server_now = count("SELECT ((extract(epoch FROM clock_timestamp()) - 946684800) * 1000000)::bigint");
    assert!((server_now - stamped(&far)).abs() < 60_000_000, "{far}");
    assert_eq!(count("SELECT (data->>'stock')::bigint FROM inventory_sync.inventory WHERE id = 1"), 8);
    // Conflicts come from base_version only.
    let stale = json(&format!(
        "SELECT inventory_sync.sync_upsert(1, '{{\"stock\": 7}}', NULL, base_version => '{}')",
        version_of(&older)
    ));
    assert_eq!(stale["status"], "conflict", "{stale}");
    let deleted = json(&format!("SELECT inventory_sync.sync_delete(1, NULL, base_version => '{}')", version_of(&none)));
    assert_eq!(deleted["status"], "applied", "{deleted}");
    assert!(stamped(&deleted) > stamped(&none));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = 'clock_skew'"), 0);
    // Back to the devices' clocks: client_ts is needed again, and an older one loses.
    exec("SELECT inventory_sync.set_ordering('inventory_sync.inventory', 'client_ts')");
    let (state, message) = sqlstate_of("SELECT inventory_sync.sync_upsert(3, '{}', NULL)");
    assert_eq!((state.as_str(), message.as_str()), ("22004", "client_ts must not be null"));
    assert_eq!(upsert(2, r#"{"stock": 0}"#, "2000-01-01 00:00+00")["status"], "conflict");
}

/// On a tracked table: the same, with its tombstones; pushes may leave client_ts out there, and
/// only there.
#[pg_test]
fn the_server_orders_a_tracked_table_by_arrival() {
    tracked_products();
    exec("SELECT inventory_sync.set_ordering('public.products', 'server')");
    assert_eq!(
        json(
            "SELECT jsonb_agg(jsonb_build_object('field', field, 'policy', policy)) FROM inventory_sync.policies \
             WHERE table_name = 'public.products'::regclass"
        ),
        json!([{"field": "updated_at", "policy": "server_clock"}])
    );
    let created = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P1}', '{{\"name\": \"Laptop\"}}', NULL)"
    ));
    assert_eq!(created["status"], "applied", "{created}");
    let older = upsert_in("public.products", P1, r#"{"stock": 5}"#, "2000-01-01 00:00+00");
    assert_eq!(older["status"], "applied", "{older}");
    assert!(stamped(&older) > stamped(&created));
    let gone = json(&format!("SELECT inventory_sync.sync_delete_in('public.products', '{P1}', '2000-01-01 00:00+00')"));
    assert_eq!(gone["status"], "applied", "{gone}");
    assert!(stamped(&gone) > stamped(&older));
    let back = upsert_in("public.products", P1, r#"{"name": "Laptop 2"}"#, "2000-01-01 00:00+00");
    assert_eq!(back["status"], "applied", "{back}");
    assert!(stamped(&back) > stamped(&gone));
    let push = json(&format!(
        "SELECT inventory_sync.sync_push('[\
           {{\"table\": \"public.products\", \"id\": \"{P1}\", \"payload\": {{\"stock\": 2}}}},\
           {{\"id\": 9, \"payload\": {{}}}}]')"
    ));
    assert_eq!(push[0]["status"], "applied", "{push}");
    assert_eq!(push[1]["status"], "error", "{push}");
    assert_eq!(push[1]["sqlstate"], "22023", "{push}");
    assert_eq!(push[1]["message"], "change has no \"client_ts\"", "{push}");
    assert_eq!(count(&format!("SELECT stock::bigint FROM public.products WHERE id = '{P1}'")), 2);
}

/// set_ordering refuses what it cannot do, by SQLSTATE, and writes nothing.
#[pg_test]
fn set_ordering_refuses_by_sqlstate() {
    tracked_products();
    exec("CREATE TABLE public.loose (id bigint PRIMARY KEY, updated_at timestamptz)");
    for (call, want, message) in [
        ("SELECT inventory_sync.set_ordering('public.products', 'arrival')", "22023", "unknown ordering \"arrival\""),
        ("SELECT inventory_sync.set_ordering('public.products', NULL)", "22004", "ordering must not be null"),
        ("SELECT inventory_sync.set_ordering(NULL, 'server')", "22004", "tbl must not be null"),
        ("SELECT inventory_sync.set_ordering('public.loose', 'server')", "55000", "table public.loose is not tracked"),
    ] {
        assert_eq!(sqlstate_of(call), (want.to_string(), message.to_string()), "{call}");
    }
    exec("CREATE ROLE isync_orderer");
    exec("GRANT USAGE ON SCHEMA inventory_sync TO isync_orderer");
    exec("SET ROLE isync_orderer");
    let (state, _) = sqlstate_of("SELECT inventory_sync.set_ordering('public.products', 'server')");
    exec("RESET ROLE");
    assert_eq!(state, "42501");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.field_policies"), 0);
}
