// Equal timestamps, merge policies and merged answers.
// Included into the `tests` schema module (src/tests/mod.rs).

#[pg_test]
fn equal_timestamps_are_ordered_by_client_id() {
    tracked_products();
    let at = "2024-03-01 10:00+00";
    let up = |id: i64, v: i64, by: &str| {
        json(&format!("SELECT inventory_sync.sync_upsert({id}, '{{\"v\": {v}}}', '{at}', '{by}')"))
    };
    // Arrival order b, a and a, b end the same: the greater client_id wins the tie.
    assert_eq!(up(1, 2, "phone-b")["status"], "applied");
    assert_eq!(up(1, 1, "phone-a")["status"], "conflict");
    assert_eq!(up(2, 1, "phone-a")["status"], "applied");
    assert_eq!(up(2, 2, "phone-b")["status"], "applied");
    assert_eq!(json("SELECT jsonb_object_agg(id, data->'v') FROM inventory_sync.inventory"), json!({"1": 2, "2": 2}));
    // The same device at the same time, or a write without client_id: equal is not newer.
    assert_eq!(up(1, 3, "phone-b")["status"], "applied");
    assert_eq!(upsert(1, r#"{"v": 4}"#, at)["status"], "applied");
    // Deletes take part in the same order.
    assert_eq!(json(&format!("SELECT inventory_sync.sync_delete(2, '{at}', 'phone-a')"))["status"], "conflict");
    // Tracked tables too (the last writer's client_id is kept with the change record).
    let up_in = |v: i64, by: &str| {
        Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_upsert_in('products', $1, jsonb_build_object('name', 'n', 'stock', $2::int), $3::timestamptz, $4)",
        &[P1.into(), v.into(), at.into(), by.into()]).unwrap().unwrap().0
    };
    assert_eq!(up_in(2, "phone-b")["status"], "applied");
    assert_eq!(up_in(1, "phone-a")["status"], "conflict");
    assert_eq!(up_in(3, "phone-c")["status"], "applied");
    assert_eq!(count("SELECT stock::bigint FROM products"), 3);
    let del = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_delete_in('products', $1, $2::timestamptz, 'phone-a')",
        &[P1.into(), at.into()],
    )
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(del["status"], "conflict");
}

fn upsert_base(id: i64, payload: &str, ts: &str, base: &str) -> Value {
    json(&format!("SELECT inventory_sync.sync_upsert({id}, '{payload}', '{ts}', base => '{base}')"))
}

#[pg_test]
fn set_policy_checks_what_it_is_given() {
    tracked_products();
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')");
    exec("SELECT inventory_sync.set_policy('products', 'stock', 'delta')");
    exec("SELECT inventory_sync.set_policy('products', 'name', 'field_lww')");
    exec("SELECT inventory_sync.set_policy('products', 'code', 'server_wins')");
    assert_eq!(
        json("SELECT jsonb_agg(jsonb_build_array(table_name::text, field, policy) ORDER BY table_name::text, field) FROM inventory_sync.policies"),
        json!([["inventory_sync.inventory", "stock", "delta"], ["products", "code", "server_wins"],
               ["products", "name", "field_lww"], ["products", "stock", "delta"]])
    );
    // lww is the default: setting it removes the entry.
    exec("SELECT inventory_sync.set_policy('products', 'name', 'lww')");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.policies"), 3);
    exec("CREATE TABLE untracked (id bigint PRIMARY KEY, updated_at timestamptz)");
    let cases = [
        ("SELECT inventory_sync.set_policy('products', 'stock', 'newest')", "22023", "unknown policy \"newest\""),
        (
            "SELECT inventory_sync.set_policy('products', 'colour', 'field_lww')",
            "42703",
            "payload key \"colour\" is not a column of table public.products",
        ),
        (
            "SELECT inventory_sync.set_policy('products', 'id', 'field_lww')",
            "22023",
            "field \"id\" of table public.products cannot have a merge policy",
        ),
        (
            "SELECT inventory_sync.set_policy('products', 'updated_at', 'field_lww')",
            "22023",
            "field \"updated_at\" of table public.products cannot have a merge policy",
        ),
        (
            "SELECT inventory_sync.set_policy('products', 'total', 'field_lww')",
            "428C9",
            "payload key \"total\" names a generated column of table public.products",
        ),
        (
            "SELECT inventory_sync.set_policy('products', 'name', 'delta')",
            "42804",
            "delta field \"name\" must be numeric",
        ),
        (
            "SELECT inventory_sync.set_policy('untracked', 'x', 'delta')",
            "55000",
            "table public.untracked is not tracked",
        ),
        (
            "SELECT inventory_sync.set_policy('inventory_sync.inventory', 'updated_at', 'delta')",
            "22023",
            "field \"updated_at\" of table inventory_sync.inventory cannot have a merge policy",
        ),
        ("SELECT inventory_sync.set_policy(NULL, 'x', 'delta')", "22004", "tbl must not be null"),
    ];
    for (stmt, want_state, want_msg) in cases {
        let (state, msg) = sqlstate_of(stmt);
        assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
    }
    exec("CREATE ROLE isync_stranger2");
    exec("SET ROLE isync_stranger2");
    let (state, _) = sqlstate_of("SELECT inventory_sync.set_policy('products', 'stock', 'lww')");
    assert_eq!(state, "42501");
    exec("RESET ROLE");
}

#[pg_test]
fn delta_adds_up_the_laptops_story() {
    setup();
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')");
    upsert(1, r#"{"name": "Laptops", "stock": 10}"#, "2024-03-01 09:00+00");
    assert_eq!(upsert_base(1, r#"{"stock": 15}"#, "2024-03-01 10:05+00", r#"{"stock": 10}"#)["status"], "applied");
    let a = upsert_base(1, r#"{"stock": 8}"#, "2024-03-01 10:00+00", r#"{"stock": 10}"#);
    assert_eq!(a["status"], "applied");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory"), json!({"name": "Laptops", "stock": 13}));
    assert_eq!(json("SELECT to_jsonb(updated_at) FROM inventory_sync.inventory"), json!("2024-03-01T10:05:00+00:00"));
    // Without a base, the field is decided by row-level last-write-wins, and the answer says so.
    let plain = upsert(1, r#"{"stock": 1}"#, "2024-03-01 09:30+00");
    assert_eq!(plain["status"], "conflict");
    assert_eq!(plain["delta_without_base"], json!(["stock"]));
    let (state, msg) =
        sqlstate_of("SELECT inventory_sync.sync_upsert(1, '{\"stock\": \"lots\"}', now(), base => '{\"stock\": 1}')");
    assert_eq!((state.as_str(), msg.as_str()), ("22023", "delta field \"stock\" needs numbers"));
    let (state, msg) = sqlstate_of("SELECT inventory_sync.sync_upsert(1, '{}', now(), base => '[1]')");
    assert_eq!((state.as_str(), msg.as_str()), ("22023", "base must be a JSON object"));
    // A delta retried with its mutation id is applied once.
    let once = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 12}', '2024-03-01 10:06+00', 'phone-a', 'd1', '{\"stock\": 13}')");
    let again = json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 12}', '2024-03-01 10:06+00', 'phone-a', 'd1', '{\"stock\": 13}')");
    assert_eq!(once["status"], "applied");
    assert_eq!(again["duplicate"], true);
    assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory"), json!(12));
    // And in a batch.
    let out = push(
        json!([{"id": 1, "payload": {"stock": 10}, "base": {"stock": 12}, "client_ts": "2024-03-01T10:07:00Z"}]),
        false,
    );
    assert_eq!(out[0]["status"], "applied");
    assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory"), json!(10));
}

#[pg_test]
fn field_lww_and_server_wins_merge() {
    tracked_products();
    exec("SELECT inventory_sync.set_policy('products', 'stock', 'field_lww')");
    exec("SELECT inventory_sync.set_policy('products', 'price', 'field_lww')");
    exec("SELECT inventory_sync.set_policy('products', 'code', 'server_wins')");
    upsert_in("products", P1, r#"{"name": "Laptop", "stock": 10, "price": 100, "code": "L-1"}"#, "2024-03-01 09:00+00");
    // B changes the price at 10:05; A, offline, changed the stock at 10:00: both survive.
    assert_eq!(upsert_in("products", P1, r#"{"price": 120}"#, "2024-03-01 10:05+00")["status"], "applied");
    assert_eq!(upsert_in("products", P1, r#"{"stock": 8}"#, "2024-03-01 10:00+00")["status"], "applied");
    assert_eq!(
        json("SELECT jsonb_build_object('stock', stock, 'price', price) FROM products"),
        serde_json::from_str::<Value>(r#"{"stock": 8, "price": 120.00}"#).unwrap()
    );
    // An older edit of the price loses, the rest applies: merged, listing each.
    let m = upsert_in("products", P1, r#"{"price": 90, "stock": 7, "code": "X-9"}"#, "2024-03-01 10:01+00");
    assert_eq!(m["status"], "merged");
    assert_eq!(m["applied"], json!(["stock"]));
    assert_eq!(m["lost"], json!(["code", "price"]));
    assert_eq!(m["server_data"]["stock"], 7);
    assert_eq!(m["server_data"]["code"], "L-1");
    assert_eq!(
        json("SELECT client_payload FROM inventory_sync.conflicts"),
        serde_json::from_str::<Value>(r#"{"code": "X-9", "price": 90}"#).unwrap()
    );
    // The row's timestamp stays the newest.
    assert_eq!(json("SELECT to_jsonb(updated_at) FROM products"), json!("2024-03-01T10:05:00+00:00"));
    // Nothing applies: a conflict.
    assert_eq!(upsert_in("products", P1, r#"{"price": 1}"#, "2024-03-01 09:30+00")["status"], "conflict");
    // A delete beats older field edits.
    delete_in("products", P1, "2024-03-01 11:00+00");
    let late = upsert_in("products", P1, r#"{"stock": 1}"#, "2024-03-01 10:30+00");
    assert_eq!(late["status"], "conflict");
    assert_eq!(late["server_data"]["deleted"], true);
    assert_eq!(count("SELECT count(*) FROM products"), 0);
    // Default table: server_wins keeps the first value.
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'sku', 'server_wins')");
    upsert(5, r#"{"sku": "A-1"}"#, "2024-03-01 09:00+00");
    assert_eq!(upsert(5, r#"{"sku": "B-2"}"#, "2024-03-01 10:00+00")["status"], "conflict");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 5"), json!({"sku": "A-1"}));
}

#[pg_test]
fn a_whole_row_write_drops_the_clocks_of_the_fields_it_sets() {
    setup();
    // The clocks are kept by the write statement itself: no helper function is left in SQL.
    assert_eq!(
        count(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'inventory_sync'::regnamespace \
             AND proname IN ('clocks_without', 'floor_clocks')"
        ),
        0
    );
    // An item brought back by a whole-row write keeps the delete's clock as its floor, in the
    // form the merge rules read: microseconds since 2000-01-01 and the deleting device.
    exec("SELECT inventory_sync.sync_delete(4, '2024-03-01 08:00+00', 'dev-b')");
    upsert(4, r#"{"stock": 7}"#, "2024-03-01 08:30+00");
    assert_eq!(
        json("SELECT field_clocks FROM inventory_sync.inventory WHERE id = 4"),
        json!({"updated_at": {"ts": 762595200000000_i64, "by": "dev-b"}})
    );
    exec("SELECT inventory_sync.sync_delete(6, '2024-03-01 08:00+00')");
    upsert(6, r#"{"stock": 7}"#, "2024-03-01 08:30+00");
    assert_eq!(
        json("SELECT field_clocks FROM inventory_sync.inventory WHERE id = 6"),
        json!({"updated_at": {"ts": 762595200000000_i64}})
    );
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'field_lww')");
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'field_lww')");
    upsert(3, r#"{"stock": 1, "price": 2}"#, "2024-03-01 09:00+00");
    upsert(3, r#"{"stock": 4}"#, "2024-03-01 11:00+00");
    let before = json("SELECT field_clocks FROM inventory_sync.inventory WHERE id = 3");
    assert!(before.get("price").is_some(), "price keeps its own, older clock: {before}");
    // Back to row-level last-write-wins: a whole-row write gives price the row's clock.
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'lww')");
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'price', 'lww')");
    assert_eq!(upsert(3, r#"{"price": 9}"#, "2024-03-01 12:00+00")["status"], "applied");
    let mut expected = before.clone();
    expected.as_object_mut().unwrap().remove("price");
    assert_eq!(json("SELECT field_clocks FROM inventory_sync.inventory WHERE id = 3"), expected);
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 3"), json!({"stock": 4, "price": 9}));
}

#[pg_test]
fn a_rejected_mutation_is_decided_again_when_resent() {
    setup();
    exec("SET inventory_sync.max_clock_skew = '5min'");
    let send = |ts: &str| {
        json(&format!(
            "SELECT inventory_sync.sync_upsert(3, '{{\"x\": 1}}', {ts}, client_id => 'phone', mutation_id => 'm-1')"
        ))
    };
    assert_eq!(send("now() + interval '1 hour'")["status"], "rejected");
    // The device fixed its clock and sends the same mutation: it is applied, once.
    let again = send("'2024-03-01 10:00+00'");
    assert_eq!((again["status"].as_str(), again.get("duplicate")), (Some("applied"), None));
    assert_eq!(send("'2024-03-01 10:00+00'")["duplicate"], true);
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 3"), json!({"x": 1}));
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = 'clock_skew'"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.mutations"), 1);
}

#[pg_test]
fn only_owners_can_repoint_a_tracking_row() {
    tracked_products();
    exec("CREATE ROLE rel_mallory");
    exec("GRANT CREATE, USAGE ON SCHEMA public TO rel_mallory");
    exec("SET ROLE rel_mallory");
    exec("CREATE TABLE public.mine (id integer PRIMARY KEY, updated_at timestamptz NOT NULL)");
    // Untracking another owner's table by pointing its row at one's own table: no row matches.
    exec("UPDATE inventory_sync.tracked SET tbl = 'public.mine' WHERE tbl = 'public.products'::regclass");
    exec("RESET ROLE");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked WHERE tbl = 'public.products'::regclass"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked WHERE tbl = 'public.mine'::regclass"), 0);
}

#[pg_test]
fn a_delta_field_of_the_default_table_takes_only_numbers() {
    setup();
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')");
    for (payload, base) in [(r#"{"stock": "many"}"#, "NULL"), (r#"{"stock": "many"}"#, r#"'{"stock": "x"}'"#)] {
        let (state, _) = sqlstate_of(&format!(
            "SELECT inventory_sync.sync_upsert(1, '{payload}', '2024-03-01 10:00+00', base => {base})"
        ));
        assert_eq!(state, "22023", "{payload} with base {base}");
    }
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory"), 0);
    upsert(1, r#"{"stock": 5}"#, "2024-03-01 10:00+00");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 1"), json!({"stock": 5}));
}
