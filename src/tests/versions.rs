// Row versions and compare-and-set: every applied write gives its row a version issued by the
// server, answers carry it, pulls carry it, and a write with `base_version` applies only if the
// row is still at that version. Included into the `tests` schema module (src/tests/mod.rs).

/// The version the default table stores for item `id`, as clients see it.
fn stored_version(id: i64) -> String {
    Spi::get_one::<String>(&format!(
        "SELECT lpad(to_hex(version), 16, '0') FROM inventory_sync.inventory WHERE id = {id}"
    ))
    .unwrap()
    .unwrap()
}

const P2: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12";

fn version_of(answer: &Value) -> String {
    answer["version"].as_str().unwrap_or_else(|| panic!("no version in {answer}")).to_string()
}

fn upsert_at(id: i64, payload: &str, ts: &str, base_version: &str) -> Value {
    json(&format!("SELECT inventory_sync.sync_upsert({id}, '{payload}', '{ts}', base_version => {base_version})"))
}

/// Each applied write answers the row's new version (16 hex digits, what the row stores), and
/// a row's versions grow, a delete's too. (Pulls show versions too: versions.sql, and the
/// clock test of tests/reliability, pull them from committed transactions.)
#[pg_test]
fn applied_writes_answer_growing_versions() {
    setup();
    let first = upsert(1, r#"{"name": "Laptop"}"#, "2024-03-01 09:00");
    let second = upsert(1, r#"{"stock": 8}"#, "2024-03-01 10:00");
    let v1 = version_of(&first);
    let v2 = version_of(&second);
    assert_eq!(v1.len(), 16, "{first}");
    assert!(v1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{first}");
    assert!(v2 > v1, "{v1} then {v2}");
    assert_eq!(v2, stored_version(1));
    let deleted = json("SELECT inventory_sync.sync_delete(1, '2024-03-01 11:00')");
    let v3 = version_of(&deleted);
    assert!(v3 > v2, "{v2} then {v3}");
    // A stale write does not move the version; its conflict shows the version of server_data.
    let stale = upsert(1, r#"{"stock": 1}"#, "2024-03-01 08:00");
    assert_eq!(stale["status"], "conflict", "{stale}");
    assert_eq!(version_of(&stale), v3);
    assert_eq!(stored_version(1), v3);
}

/// A row written by a server whose clock was ahead (the clock stepped back since) still gets a
/// higher version at its next write: one more than the last.
#[pg_test]
fn versions_never_go_backwards_when_the_clock_does() {
    setup();
    upsert(1, r#"{"stock": 10}"#, "2024-03-01 09:00");
    // The row's version as a clock a day ahead would have given it.
    exec("UPDATE inventory_sync.inventory SET version = version + 86400000000 WHERE id = 1");
    let ahead = stored_version(1);
    let next = version_of(&upsert(1, r#"{"stock": 9}"#, "2024-03-01 10:00"));
    assert_eq!(i64::from_str_radix(&next, 16).unwrap(), i64::from_str_radix(&ahead, 16).unwrap() + 1);
}

/// Compare-and-set on the default table: the write applies at the row's version; at any other
/// it is a conflict (journaled, stale) showing the row and its version, and writes nothing.
#[pg_test]
fn a_write_with_a_base_version_applies_only_at_that_version() {
    setup();
    let created = upsert_at(1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 09:00", "''");
    assert_eq!(created["status"], "applied", "{created}");
    assert_eq!(created["created"], true, "{created}");
    let v1 = version_of(&created);
    // Device B sells two at v1.
    let b = upsert_at(1, r#"{"stock": 8}"#, "2024-03-01 10:00", &format!("'{v1}'"));
    assert_eq!(b["status"], "applied", "{b}");
    let v2 = version_of(&b);
    // Device A, still at v1, and with a later clock: the row moved on, so it conflicts.
    let a = upsert_at(1, r#"{"stock": 5}"#, "2024-03-01 11:00", &format!("'{v1}'"));
    assert_eq!(a["status"], "conflict", "{a}");
    assert_eq!(a["server_data"]["stock"], 8, "{a}");
    assert_eq!(version_of(&a), v2);
    assert_eq!(count("SELECT (data->>'stock')::bigint FROM inventory_sync.inventory WHERE id = 1"), 8);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = 'stale'"), 1);
    // A create ('') of a row that exists conflicts; so does a version of a row that does not.
    let again = upsert_at(1, r#"{"stock": 1}"#, "2024-03-01 12:00", "''");
    assert_eq!(again["status"], "conflict", "{again}");
    let nowhere = upsert_at(2, r#"{"stock": 1}"#, "2024-03-01 12:00", &format!("'{v2}'"));
    assert_eq!(nowhere["status"], "conflict", "{nowhere}");
    assert_eq!(nowhere["server_data"], Value::Null, "{nowhere}");
    assert_eq!(nowhere["version"], Value::Null, "{nowhere}");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2"), 0);
    // A delete at the version deletes; the tombstone's version is a base to bring it back.
    let stale_delete =
        json(&format!("SELECT inventory_sync.sync_delete(1, '2024-03-01 13:00', base_version => '{v1}')"));
    assert_eq!(stale_delete["status"], "conflict", "{stale_delete}");
    let deleted = json(&format!("SELECT inventory_sync.sync_delete(1, '2024-03-01 13:00', base_version => '{v2}')"));
    assert_eq!(deleted["status"], "applied", "{deleted}");
    let back = upsert_at(1, r#"{"name": "Laptop"}"#, "2024-03-01 14:00", &format!("'{}'", version_of(&deleted)));
    assert_eq!(back["status"], "applied", "{back}");
    // With a base version the clock still orders: an older write at the right version loses.
    let older = upsert_at(1, r#"{"stock": 3}"#, "2024-03-01 08:00", &format!("'{}'", version_of(&back)));
    assert_eq!(older["status"], "conflict", "{older}");
}

/// Compare-and-set on a tracked table, its tombstones, and a row written by plain SQL (which
/// has no version: only a write without a base version replaces it).
#[pg_test]
fn tracked_rows_compare_their_versions() {
    tracked_products();
    let created = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P1}', '{{\"name\": \"Laptop\", \"stock\": 10}}', \
         '2024-03-01 09:00', base_version => '')"
    ));
    assert_eq!(created["status"], "applied", "{created}");
    let v1 = version_of(&created);
    let moved = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P1}', '{{\"stock\": 8}}', '2024-03-01 10:00', \
         base_version => '{v1}')"
    ));
    let v2 = version_of(&moved);
    assert!(v2 > v1);
    let stale = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P1}', '{{\"stock\": 5}}', '2024-03-01 11:00', \
         base_version => '{v1}')"
    ));
    assert_eq!(stale["status"], "conflict", "{stale}");
    assert_eq!(stale["server_data"]["stock"], 8, "{stale}");
    assert_eq!(version_of(&stale), v2);
    assert_eq!(count(&format!("SELECT stock::bigint FROM public.products WHERE id = '{P1}'")), 8);
    let deleted = json(&format!(
        "SELECT inventory_sync.sync_delete_in('public.products', '{P1}', '2024-03-01 12:00', base_version => '{v2}')"
    ));
    assert_eq!(deleted["status"], "applied", "{deleted}");
    let tombstone = version_of(&deleted);
    assert!(tombstone > v2);
    let create_again = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P1}', '{{\"name\": \"X\"}}', '2024-03-01 13:00', \
         base_version => '')"
    ));
    assert_eq!(create_again["status"], "conflict", "{create_again}");
    assert_eq!(version_of(&create_again), tombstone);
    assert_eq!(count(&format!("SELECT count(*) FROM public.products WHERE id = '{P1}'")), 0);
    // A row inserted by plain SQL: no version; a create conflicts, a plain write replaces it.
    exec(&format!(
        "INSERT INTO public.products (id, name, stock, updated_at) VALUES ('{P2}', 'Mouse', 4, '2024-03-01 08:00')"
    ));
    let create = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('public.products', '{P2}', '{{\"stock\": 3}}', '2024-03-01 13:00', \
         base_version => '')"
    ));
    assert_eq!(create["status"], "conflict", "{create}");
    assert_eq!(create["version"], Value::Null, "{create}");
    let plain = upsert_in("public.products", P2, r#"{"stock": 3}"#, "2024-03-01 13:00");
    assert_eq!(plain["status"], "applied", "{plain}");
    assert_eq!(plain["version"].as_str().map(str::len), Some(16), "{plain}");
}

/// A merging write (a delta field) with a base version: conflicts once the row moved on.
#[pg_test]
fn merging_writes_compare_versions_too() {
    setup();
    exec("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'delta')");
    let v1 = version_of(&upsert(1, r#"{"stock": 10}"#, "2024-03-01 09:00"));
    let b = json(&format!(
        "SELECT inventory_sync.sync_upsert(1, '{{\"stock\": 8}}', '2024-03-01 10:00', base => '{{\"stock\": 10}}', \
         base_version => '{v1}')"
    ));
    assert_eq!(b["status"], "applied", "{b}");
    let a = json(&format!(
        "SELECT inventory_sync.sync_upsert(1, '{{\"stock\": 7}}', '2024-03-01 11:00', base => '{{\"stock\": 10}}', \
         base_version => '{v1}')"
    ));
    assert_eq!(a["status"], "conflict", "{a}");
    assert_eq!(version_of(&a), version_of(&b));
    assert_eq!(count("SELECT (data->>'stock')::bigint FROM inventory_sync.inventory WHERE id = 1"), 8);
}

/// sync_push takes base_version per change; a malformed one is the change's error (22023), and a
/// single call refuses it before writing anything.
#[pg_test]
fn base_versions_in_a_push_and_malformed_ones() {
    setup();
    let v1 = version_of(&upsert(1, r#"{"stock": 10}"#, "2024-03-01 09:00"));
    let push = json(&format!(
        "SELECT inventory_sync.sync_push('[\
           {{\"id\": 1, \"payload\": {{\"stock\": 8}}, \"client_ts\": \"2024-03-01 10:00\", \"base_version\": \"{v1}\"}},\
           {{\"id\": 1, \"payload\": {{\"stock\": 5}}, \"client_ts\": \"2024-03-01 11:00\", \"base_version\": \"{v1}\"}},\
           {{\"id\": 2, \"payload\": {{\"stock\": 1}}, \"client_ts\": \"2024-03-01 11:00\", \"base_version\": \"nope\"}},\
           {{\"op\": \"delete\", \"id\": 3, \"client_ts\": \"2024-03-01 11:00\", \"base_version\": \"\"}}]')"
    ));
    let outcomes = push.as_array().unwrap_or_else(|| panic!("{push}"));
    assert_eq!(outcomes[0]["status"], "applied", "{push}");
    assert_eq!(outcomes[1]["status"], "conflict", "{push}");
    assert_eq!(outcomes[1]["version"], outcomes[0]["version"], "{push}");
    assert_eq!(outcomes[2]["status"], "error", "{push}");
    assert_eq!(outcomes[2]["sqlstate"], "22023", "{push}");
    assert_eq!(outcomes[3]["status"], "applied", "{push}");
    for bad in ["'1'", "'0002D1A3B4C5D6E7'", "'ffffffffffffffff'"] {
        let (state, message) = sqlstate_of(&format!(
            "SELECT inventory_sync.sync_upsert(9, '{{}}', '2024-03-01 09:00', base_version => {bad})"
        ));
        assert_eq!(state, "22023", "{bad}: {message}");
        assert!(message.starts_with("base_version \""), "{message}");
    }
    assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id IN (2, 9)"), 0);
}
