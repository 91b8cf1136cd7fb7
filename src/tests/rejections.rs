// Rejections with a reason: a write the table's own rules refuse (a constraint, an error raised by
// its trigger) answers `rejected`, is journaled, and leaves the row as it was; the call goes on.
// Included into the `tests` schema module (src/tests/mod.rs).

/// A table whose stock may not go below zero, counted as a delta, with a trigger that refuses
/// one label, and a table of lines that must name one of its shelves.
fn rules() {
    setup();
    exec(
        "CREATE TABLE public.shelves (id bigint PRIMARY KEY, label text NOT NULL, \
         stock integer CONSTRAINT stock_not_negative CHECK (stock >= 0), updated_at timestamptz)",
    );
    exec("SELECT inventory_sync.track('public.shelves')");
    exec("SELECT inventory_sync.set_policy('public.shelves', 'stock', 'delta')");
    exec(
        "CREATE FUNCTION public.no_closed_shelves() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.label = 'closed' THEN RAISE EXCEPTION 'shelf % is closed', NEW.id; END IF; RETURN NEW; END $$",
    );
    exec(
        "CREATE TRIGGER no_closed_shelves BEFORE INSERT OR UPDATE ON public.shelves \
         FOR EACH ROW EXECUTE FUNCTION public.no_closed_shelves()",
    );
    exec(
        "CREATE TABLE public.lines (id bigint PRIMARY KEY, \
         shelf bigint CONSTRAINT lines_on_a_shelf REFERENCES public.shelves, updated_at timestamptz)",
    );
    exec("SELECT inventory_sync.track('public.lines')");
}

fn journaled(reason: &str) -> i64 {
    count(&format!("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = '{reason}'"))
}

/// The seed's stock, one step further: others have sold the server down to 3; a device that last
/// saw 10 sells 8 offline (sends 2 with base 10): 3 + (2 - 10) = -5 breaks the CHECK. The write
/// is rejected with the constraint named, the stock stays 3, and the write is journaled.
#[pg_test]
fn a_delta_that_breaks_a_check_is_rejected_with_the_constraint_named() {
    rules();
    json("SELECT inventory_sync.sync_upsert_in('public.shelves', '1', '{\"label\": \"A\", \"stock\": 10}', '2024-03-01 09:00+00')");
    json(
        "SELECT inventory_sync.sync_upsert_in('public.shelves', '1', '{\"stock\": 3}', '2024-03-01 10:00+00', \
         'b', null, '{\"stock\": 10}')",
    );
    let answer = json(
        "SELECT inventory_sync.sync_upsert_in('public.shelves', '1', '{\"stock\": 2}', '2024-03-01 10:30+00', \
         'a', null, '{\"stock\": 10}')",
    );
    assert_eq!(answer["status"], "rejected", "{answer}");
    assert_eq!(answer["reason"], "constraint", "{answer}");
    assert_eq!(answer["constraint"], "stock_not_negative", "{answer}");
    assert_eq!(answer["sqlstate"], "23514", "{answer}");
    assert!(answer["message"].as_str().is_some_and(|m| m.contains("stock_not_negative")), "{answer}");
    assert_eq!(answer["server_data"]["stock"], 3, "{answer}");
    assert_eq!(answer["id"], 1, "{answer}");
    assert_eq!(count("SELECT stock FROM public.shelves WHERE id = 1"), 3);
    assert_eq!(journaled("constraint"), 1);
    let entry = json("SELECT to_jsonb(j) FROM inventory_sync.conflicts j WHERE reason = 'constraint'");
    assert_eq!(entry["client_payload"], serde_json::json!({"stock": 2}), "{entry}");
    assert_eq!(entry["server_data"]["stock"], 3, "{entry}");
    // The row's change record is the applied write's: the refused one left nothing.
    assert_eq!(
        json("SELECT to_jsonb(c.ts) FROM inventory_sync.changes c WHERE c.row_id = '1'"),
        serde_json::json!("2024-03-01T10:00:00+00:00")
    );
}

/// NOT NULL, a foreign key (on an insert, and on a delete of a row another row points at) and an
/// error raised by the table's trigger: each rejected with its reason, nothing written.
#[pg_test]
fn not_null_foreign_keys_and_triggers_reject_with_their_reason() {
    rules();
    let no_label =
        json("SELECT inventory_sync.sync_upsert_in('public.shelves', '2', '{\"stock\": 1}', '2024-03-01 09:00+00')");
    assert_eq!(
        (&no_label["status"], &no_label["reason"], &no_label["sqlstate"]),
        (&"rejected".into(), &"constraint".into(), &"23502".into()),
        "{no_label}"
    );
    assert_eq!(no_label["server_data"], Value::Null, "{no_label}");
    let orphan =
        json("SELECT inventory_sync.sync_upsert_in('public.lines', '1', '{\"shelf\": 99}', '2024-03-01 09:00+00')");
    assert_eq!(
        (&orphan["reason"], &orphan["constraint"], &orphan["sqlstate"]),
        (&"constraint".into(), &"lines_on_a_shelf".into(), &"23503".into()),
        "{orphan}"
    );
    json("SELECT inventory_sync.sync_upsert_in('public.shelves', '3', '{\"label\": \"B\", \"stock\": 1}', '2024-03-01 09:00+00')");
    json("SELECT inventory_sync.sync_upsert_in('public.lines', '2', '{\"shelf\": 3}', '2024-03-01 09:00+00')");
    let pointed_at = json("SELECT inventory_sync.sync_delete_in('public.shelves', '3', '2024-03-01 10:00+00')");
    assert_eq!(
        (&pointed_at["status"], &pointed_at["constraint"]),
        (&"rejected".into(), &"lines_on_a_shelf".into()),
        "{pointed_at}"
    );
    assert_eq!(pointed_at["server_data"]["label"], "B", "{pointed_at}");
    assert_eq!(count("SELECT count(*) FROM public.shelves WHERE id = 3"), 1);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.changes WHERE row_id = '3' AND op = 'delete'"), 0);
    let closed = json(
        "SELECT inventory_sync.sync_upsert_in('public.shelves', '3', '{\"label\": \"closed\"}', '2024-03-01 11:00+00')",
    );
    assert_eq!(
        (&closed["reason"], &closed["constraint"], &closed["sqlstate"]),
        (&"trigger".into(), &Value::Null, &"P0001".into()),
        "{closed}"
    );
    assert_eq!(closed["message"], "shelf 3 is closed", "{closed}");
    assert_eq!(count("SELECT count(*) FROM public.shelves WHERE label = 'closed'"), 0);
    assert_eq!((journaled("constraint"), journaled("trigger")), (3, 1));
    // A value the column cannot hold is malformed, not a rule: an error, as before.
    assert_eq!(
        sqlstate_of("SELECT inventory_sync.sync_upsert_in('public.shelves', '3', '{\"stock\": \"many\"}', '2024-03-01 12:00+00')").0,
        "22P02"
    );
}

/// In a push the other changes go on; a mutation id remembers the rejection, so a retry gets the
/// same answer (a duplicate) and writes nothing more.
#[pg_test]
fn a_push_goes_on_past_a_rejection_and_a_retry_gets_the_same_answer() {
    rules();
    let batch = r#"[
        {"table": "public.shelves", "id": 5, "payload": {"label": "C", "stock": 2}, "client_ts": "2024-03-01T09:00:00Z"},
        {"table": "public.shelves", "id": 6, "payload": {"label": "D", "stock": -1}, "client_ts": "2024-03-01T09:00:00Z",
         "client_id": "phone", "mutation_id": "m-6"},
        {"table": "public.shelves", "id": 7, "payload": {"label": "F", "stock": 1}, "client_ts": "2024-03-01T09:00:00Z"}
    ]"#;
    let outcomes = json(&format!("SELECT inventory_sync.sync_push('{batch}')"));
    let statuses: Vec<_> = outcomes.as_array().unwrap().iter().map(|o| o["status"].clone()).collect();
    assert_eq!(statuses, ["applied", "rejected", "applied"], "{outcomes}");
    assert_eq!(outcomes[1]["constraint"], "stock_not_negative", "{outcomes}");
    let retry = json(
        "SELECT inventory_sync.sync_upsert_in('public.shelves', '6', '{\"label\": \"D\", \"stock\": -1}', \
         '2024-03-01 09:00+00', 'phone', 'm-6')",
    );
    assert_eq!(retry["duplicate"], true, "{retry}");
    assert_eq!(retry["status"], "rejected", "{retry}");
    assert_eq!(journaled("constraint"), 1);
    assert_eq!(count("SELECT count(*) FROM public.shelves"), 2);
    // An atomic push is all or nothing: a refused change fails it whole, with the change's error.
    let atomic = r#"[{"table": "public.shelves", "id": 8, "payload": {"label": "E"}, "client_ts": "2024-03-01T09:00:00Z"},
        {"table": "public.shelves", "id": 9, "payload": {"label": "closed"}, "client_ts": "2024-03-01T09:00:00Z"}]"#;
    let (state, message) = sqlstate_of(&format!("SELECT inventory_sync.sync_push('{atomic}', atomic => true)"));
    assert_eq!(state, "P0001", "{message}");
    assert_eq!(count("SELECT count(*) FROM public.shelves"), 2);
}
