// Deletes and tombstones, on the default table and on tracked tables.
// Included into the `tests` schema module (src/tests/mod.rs).

fn delete(id: i64, ts: &str) -> Value {
    json(&format!("SELECT inventory_sync.sync_delete({id}, '{ts}'::timestamptz)"))
}

fn delete_in(table: &str, id: &str, ts: &str) -> Value {
    Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_delete_in($1::regclass, $2, $3::timestamptz)",
        &[table.into(), id.into(), ts.into()],
    )
    .unwrap()
    .unwrap()
    .0
}

#[pg_test]
fn deletes_leave_tombstones_on_the_default_table() {
    setup();
    upsert(1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 10:00+00");
    assert_eq!(
        versioned(delete(1, "2024-03-01 10:05+00")),
        json!({"status": "applied", "id": 1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"})
    );
    // An older offline edit arriving later: a conflict showing the item as deleted.
    assert_eq!(
        versioned(upsert(1, r#"{"stock": 8}"#, "2024-03-01 10:01+00")),
        json!({"status": "conflict", "id": 1,
               "server_data": {"id": 1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"}})
    );
    // An older delete is a conflict too, and changes nothing.
    assert_eq!(delete(1, "2024-03-01 10:02+00")["status"], "conflict");
    // A newer edit brings the item back, with just its own fields.
    assert_eq!(upsert(1, r#"{"stock": 3}"#, "2024-03-01 10:10+00")["status"], "applied");
    assert_eq!(json("SELECT to_jsonb(i) - 'position' - 'changed_at' - 'updated_by' - 'field_clocks' - 'version' FROM inventory_sync.inventory i"),
               json!({"id": 1, "data": {"stock": 3}, "deleted": false, "updated_at": "2024-03-01T10:10:00+00:00"}));
    // A delete older than the latest edit removes nothing.
    assert_eq!(delete(1, "2024-03-01 10:09+00")["status"], "conflict");
    assert_eq!(json("SELECT data FROM inventory_sync.inventory"), json!({"stock": 3}));
    // Deleting an item the server never had leaves a tombstone: its older creation loses.
    assert_eq!(delete(2, "2024-03-01 12:00+00")["status"], "applied");
    assert_eq!(upsert(2, r#"{"name": "Ghost"}"#, "2024-03-01 11:00+00")["status"], "conflict");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE op = 'delete'"), 2);
}

#[pg_test]
fn deletes_leave_tombstones_on_tracked_tables() {
    tracked_products();
    upsert_in("products", P1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 10:00+00");
    assert_eq!(
        versioned(delete_in("products", P1, "2024-03-01 10:05+00")),
        json!({"status": "applied", "id": P1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"})
    );
    assert_eq!(count("SELECT count(*) FROM products"), 0, "the application's row is gone");
    let stale = upsert_in("products", P1, r#"{"stock": 8}"#, "2024-03-01 10:01+00");
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["server_data"], json!({"id": P1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"}));
    assert_eq!(count("SELECT count(*) FROM products"), 0);
    assert_eq!(delete_in("products", P1, "2024-03-01 10:02+00")["status"], "conflict");
    let back = upsert_in("products", P1, r#"{"name": "Laptop 2"}"#, "2024-03-01 10:10+00");
    assert_eq!(back["status"], "applied");
    assert_eq!(back["created"], true);
    assert_eq!(
        json("SELECT jsonb_build_object('name', name, 'stock', stock) FROM products"),
        json!({"name": "Laptop 2", "stock": 0})
    );
    assert_eq!(json("SELECT to_jsonb(op) FROM inventory_sync.changes_uuid"), json!("upsert"));
    assert_eq!(delete_in("products", P1, "2024-03-01 10:09+00")["status"], "conflict");
    assert_eq!(count("SELECT count(*) FROM products"), 1);
    // A row the server never had: a tombstone, so the older creation loses.
    let other = "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    assert_eq!(delete_in("products", other, "2024-03-01 12:00+00")["status"], "applied");
    assert_eq!(upsert_in("products", other, r#"{"name": "Ghost"}"#, "2024-03-01 11:00+00")["status"], "conflict");
    let (state, _) = sqlstate_of("SELECT inventory_sync.sync_delete_in('products', 'x', now())");
    assert_eq!(state, "22P02");
}
