// Tracked tables: track/untrack, typed values, bad input, ownership, altered tables, hostile identifiers.
// Included into the `tests` schema module (src/tests/mod.rs).

fn tracked_products() {
    setup();
    exec("CREATE TYPE public.color AS ENUM ('red', 'green')");
    exec("CREATE DOMAIN public.positive AS integer CHECK (VALUE > 0)");
    exec(
        "CREATE TABLE public.products (
             id uuid PRIMARY KEY,
             name text NOT NULL,
             stock integer NOT NULL DEFAULT 0,
             price numeric(10,2),
             active boolean DEFAULT true,
             tags text[],
             sizes integer[],
             attrs jsonb,
             color public.color,
             min_order public.positive,
             code varchar(4),
             made timestamptz,
             total numeric GENERATED ALWAYS AS (price * stock) STORED,
             updated_at timestamptz NOT NULL
         )",
    );
    exec("SELECT inventory_sync.track('public.products')");
}

const P1: &str = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

fn upsert_in(table: &str, id: &str, payload: &str, ts: &str) -> Value {
    Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, $3::jsonb, $4::timestamptz)",
        &[table.into(), id.into(), payload.into(), ts.into()],
    )
    .unwrap_or_else(|e| panic!("{table} {id} {payload}: {e}"))
    .unwrap()
    .0
}

#[pg_test]
fn tracked_insert_update_conflict() {
    tracked_products();
    let created = upsert_in("products", P1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 10:00+00");
    assert_eq!(
        versioned(created),
        json!({"status": "applied", "id": P1, "created": true, "updated_at": "2024-03-01T10:00:00+00:00"})
    );
    // Columns not in the payload got their defaults.
    assert_eq!(
        json("SELECT to_jsonb(p) - 'updated_at' FROM products p"),
        json!({"id": P1, "name": "Laptop", "stock": 10, "price": null, "active": true, "tags": null,
               "sizes": null, "attrs": null, "color": null, "min_order": null, "code": null,
               "made": null, "total": null})
    );
    let updated = upsert_in("products", P1, r#"{"stock": 15, "price": 999.5}"#, "2024-03-01 10:05+00");
    assert_eq!(updated["status"], "applied");
    assert_eq!(updated["created"], false);
    let stale = upsert_in("products", P1, r#"{"stock": 8}"#, "2024-03-01 10:00+00");
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["id"], P1);
    assert_eq!(stale["server_data"]["stock"], 15);
    assert_eq!(stale["server_data"]["name"], "Laptop");
    assert_eq!(stale["server_data"]["total"].to_string(), "14992.50");
    assert_eq!(stale["server_data"]["updated_at"], "2024-03-01T10:05:00+00:00");
    assert_eq!(count("SELECT stock::bigint FROM products"), 15);
    assert_eq!(
        json(
            "SELECT jsonb_build_object('row_id', row_id, 'table', table_name, 'reason', reason,
                     'payload', client_payload, 'server_stock', server_data->'stock')
                FROM inventory_sync.conflicts"
        ),
        json!({"row_id": P1, "table": "public.products", "reason": "stale",
               "payload": {"stock": 8}, "server_stock": 15})
    );
}

#[pg_test]
fn tracked_values_are_converted_to_column_types() {
    tracked_products();
    let answer = upsert_in(
        "products",
        P1,
        r#"{"name": "it's; DROP TABLE products; --", "stock": "12", "price": 19.99, "active": false,
            "tags": ["a\"b", "c,d", null, "NULL"], "sizes": [1, 2, 3], "attrs": {"k": [1, {"x": null}]},
            "color": "green", "min_order": 3, "code": "AB", "made": "2024-01-02 03:04:05+02"}"#,
        "2024-03-01 10:00+00",
    );
    assert_eq!(answer["status"], "applied");
    assert_eq!(
        json("SELECT to_jsonb(p) - 'updated_at' - 'id' FROM products p"),
        json!({"name": "it's; DROP TABLE products; --", "stock": 12, "price": 19.99, "active": false,
               "tags": ["a\"b", "c,d", null, "NULL"], "sizes": [1, 2, 3], "attrs": {"k": [1, {"x": null}]},
               "color": "green", "min_order": 3, "code": "AB", "made": "2024-01-02T01:04:05+00:00",
               "total": 239.88})
    );
    // A JSON null sets the column to NULL; a string for jsonb stays a JSON string.
    upsert_in("products", P1, r#"{"price": null, "attrs": "plain"}"#, "2024-03-01 10:01+00");
    assert_eq!(
        json("SELECT jsonb_build_object('p', price, 'a', attrs) FROM products"),
        json!({"p": null, "a": "plain"})
    );
}

#[pg_test]
fn tracked_bad_input_names_the_key_or_column() {
    tracked_products();
    upsert_in("products", P1, r#"{"name": "Laptop"}"#, "2024-03-01 10:00+00");
    let call = |payload: &str| {
        format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{payload}', '2024-03-01 11:00+00')")
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (call(r#"{"colour": "red"}"#), "42703", "payload key \"colour\" is not a column of table public.products"),
        (call(r#"{"updated_at": "2024-01-01"}"#), "22023", "payload key \"updated_at\" is the write-timestamp column of table public.products"),
        (call(r#"{"total": 5}"#), "428C9", "payload key \"total\" names a generated column of table public.products"),
        (call(r#"{"id": "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}"#), "22023", "payload key \"id\" does not match the id argument"),
        (call(r#"{"stock": "many"}"#), "22P02", "invalid value for column \"stock\" of table public.products: invalid input syntax for type integer: \"many\""),
        (call(r#"{"stock": 1.5}"#), "22P02", "invalid value for column \"stock\" of table public.products: invalid input syntax for type integer: \"1.5\""),
        (call(r#"{"stock": 99999999999}"#), "22003", "invalid value for column \"stock\" of table public.products: value \"99999999999\" is out of range for type integer"),
        (call(r#"{"color": "blue"}"#), "22P02", "invalid value for column \"color\" of table public.products: invalid input value for enum color: \"blue\""),
        (call(r#"{"code": "TOOLONG"}"#), "22001", "invalid value for column \"code\" of table public.products: value too long for type character varying(4)"),
        (call(r#"{"made": "soon"}"#), "22007", "invalid value for column \"made\" of table public.products: invalid input syntax for type timestamp with time zone: \"soon\""),
        (call(r#"{"sizes": ["x"]}"#), "22P02", "invalid value for column \"sizes\" of table public.products: invalid input syntax for type integer: \"x\""),
        (call(r#"[1]"#), "22023", "payload must be a JSON object"),
        ("SELECT inventory_sync.sync_upsert_in('products', 'not-a-uuid', '{}', now())".into(), "22P02",
         "invalid value for column \"id\" of table public.products: invalid input syntax for type uuid: \"not-a-uuid\""),
        ("SELECT inventory_sync.sync_upsert_in(NULL, '1', '{}', now())".into(), "22004", "tbl must not be null"),
        ("SELECT inventory_sync.sync_upsert_in('products', NULL, '{}', now())".into(), "22004", "id must not be null"),
        ("SELECT inventory_sync.sync_upsert_in('no_such_table', '1', '{}', now())".into(), "42P01", "relation \"no_such_table\" does not exist"),
    ];
    for (stmt, want_state, want_msg) in cases {
        let (state, msg) = sqlstate_of(&stmt);
        assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
    }
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts"), 0);
    // The table's own rules (a domain's CHECK, NOT NULL, also for a new row lacking a column
    // without default) refuse a write: rejected with the rule's SQLSTATE and message, journaled.
    let refused = [
        (call(r#"{"min_order": 0}"#), "23514", Some("positive_check"), "invalid value for column \"min_order\" of table public.products: value for domain positive violates check constraint \"positive_check\""),
        (call(r#"{"name": null}"#), "23502", None, "null value in column \"name\" of relation \"products\" violates not-null constraint"),
        ("SELECT inventory_sync.sync_upsert_in('products', 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"stock\": 1}', now())".into(),
         "23502", None, "null value in column \"name\" of relation \"products\" violates not-null constraint"),
    ];
    for (stmt, state, constraint, message) in refused {
        let answer = json(&stmt);
        assert_eq!(
            (&answer["status"], &answer["reason"], &answer["sqlstate"]),
            (&json!("rejected"), &json!("constraint"), &json!(state)),
            "{stmt}: {answer}"
        );
        assert_eq!(
            (&answer["constraint"], &answer["message"]),
            (&json!(constraint), &json!(message)),
            "{stmt}: {answer}"
        );
    }
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = 'constraint'"), 3);
    assert_eq!(count("SELECT count(*) FROM products"), 1);
    assert_eq!(json("SELECT to_jsonb(name) FROM products"), json!("Laptop"));
    // The id key may repeat the id, in any spelling of the same value.
    let same =
        upsert_in("products", P1, &format!(r#"{{"id": "{}", "stock": 2}}"#, P1.to_uppercase()), "2024-03-01 11:00+00");
    assert_eq!(same["status"], "applied");
}

#[pg_test]
fn tracked_clock_skew() {
    tracked_products();
    exec("SET inventory_sync.max_clock_skew = '1min'");
    let answer = json(&format!(
        "SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{\"name\": \"x\"}}', now() + interval '1 hour')"
    ));
    assert_eq!(answer["status"], "rejected");
    assert_eq!(answer["id"], P1);
    assert_eq!(answer["max_clock_skew_seconds"], 60);
    assert_eq!(count("SELECT count(*) FROM products"), 0);
    assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE reason = 'clock_skew' AND table_name = 'public.products'"), 1);
}

#[pg_test]
fn every_key_type() {
    setup();
    for (typ, id, answer_id) in [
        ("bigint", "9007199254740993", json!(9007199254740993_i64)),
        ("integer", "42", json!(42)),
        ("text", "SKU-1", json!("SKU-1")),
        ("uuid", P1, json!(P1)),
    ] {
        exec(&format!("CREATE TABLE t_{typ} (k {typ} PRIMARY KEY, v text, modified timestamptz)"));
        exec(&format!("SELECT inventory_sync.track('t_{typ}', 'modified')"));
        let a = upsert_in(&format!("t_{typ}"), id, r#"{"v": "one"}"#, "2024-03-01 10:00+00");
        assert_eq!(a["id"], answer_id, "{typ}");
        let c = upsert_in(&format!("t_{typ}"), id, r#"{"v": "old"}"#, "2024-03-01 09:00+00");
        assert_eq!(c["status"], "conflict", "{typ}");
        assert_eq!(c["server_data"], json!({"k": answer_id, "v": "one", "modified": "2024-03-01T10:00:00+00:00"}));
    }
    // A row written outside sync with no timestamp is older than any write.
    exec("INSERT INTO t_text VALUES ('legacy', 'old', NULL)");
    assert_eq!(upsert_in("t_text", "legacy", r#"{"v": "new"}"#, "2000-01-01 00:00+00")["status"], "applied");
}

#[pg_test]
fn track_refuses_what_cannot_be_synced() {
    setup();
    exec("CREATE TABLE no_pk (id bigint, updated_at timestamptz)");
    exec("CREATE TABLE two_pk (a bigint, b bigint, updated_at timestamptz, PRIMARY KEY (a, b))");
    exec("CREATE TABLE small_pk (id smallint PRIMARY KEY, updated_at timestamptz)");
    exec("CREATE TABLE no_ts (id bigint PRIMARY KEY, modified timestamptz)");
    exec("CREATE TABLE date_ts (id bigint PRIMARY KEY, updated_at date)");
    exec(
        "CREATE TABLE gen_ts (id bigint PRIMARY KEY, t timestamptz,
                               updated_at timestamptz GENERATED ALWAYS AS (t) STORED)",
    );
    exec("CREATE VIEW a_view AS SELECT 1 AS id");
    let cases = [
        ("SELECT inventory_sync.track('no_pk')", "42P16", "table public.no_pk has no single-column primary key"),
        ("SELECT inventory_sync.track('two_pk')", "42P16", "table public.two_pk has no single-column primary key"),
        (
            "SELECT inventory_sync.track('small_pk')",
            "42804",
            "primary key column \"id\" of table public.small_pk has type smallint",
        ),
        ("SELECT inventory_sync.track('no_ts')", "42703", "column \"updated_at\" of table public.no_ts does not exist"),
        (
            "SELECT inventory_sync.track('date_ts')",
            "42804",
            "column \"updated_at\" of table public.date_ts cannot be the write-timestamp column",
        ),
        (
            "SELECT inventory_sync.track('gen_ts')",
            "42804",
            "column \"updated_at\" of table public.gen_ts cannot be the write-timestamp column",
        ),
        ("SELECT inventory_sync.track('a_view')", "42809", "public.a_view is not a table"),
        (
            "SELECT inventory_sync.track('inventory_sync.conflicts')",
            "42809",
            "cannot track inventory_sync's own table inventory_sync.conflicts",
        ),
        ("SELECT inventory_sync.track(NULL)", "22004", "tbl must not be null"),
        ("SELECT inventory_sync.track('no_ts', NULL)", "22004", "ts_column must not be null"),
        ("SELECT inventory_sync.untrack('no_ts')", "55000", "table public.no_ts is not tracked"),
        (
            "SELECT inventory_sync.sync_upsert_in('no_ts', '1', '{}', now())",
            "55000",
            "table public.no_ts is not tracked",
        ),
    ];
    for (stmt, want_state, want_msg) in cases {
        let (state, msg) = sqlstate_of(stmt);
        assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
    }
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked"), 0);
    // Naming the right column works.
    exec("SELECT inventory_sync.track('no_ts', 'modified')");
    assert_eq!(
        json("SELECT to_jsonb(t) - 'tracked_at' - 'table_id' FROM inventory_sync.tracked_tables t"),
        json!({"table_name": "no_ts", "key_column": "id", "key_type": "bigint",
               "ts_column": "modified", "tracked_by": "postgres"})
    );
}

#[pg_test]
fn only_the_owner_tracks() {
    setup();
    exec("CREATE TABLE owned (id bigint PRIMARY KEY, updated_at timestamptz)");
    exec("CREATE ROLE isync_stranger");
    exec("GRANT ALL ON owned TO isync_stranger");
    exec("SET ROLE isync_stranger");
    let (state, msg) = sqlstate_of("SELECT inventory_sync.track('public.owned')");
    assert_eq!((state.as_str(), msg.as_str()), ("42501", "must be owner of table public.owned"));
    // Nor around the function: the catalog's policy refuses rows for tables one does not own.
    let (state, _) =
        sqlstate_of("INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum) VALUES ('public.owned', 1, 2)");
    assert_eq!(state, "42501");
    exec("RESET ROLE");
    exec("SELECT inventory_sync.track('public.owned')");
    exec("SET ROLE isync_stranger");
    let (state, _) = sqlstate_of("SELECT inventory_sync.untrack('public.owned')");
    assert_eq!(state, "42501");
    exec("DELETE FROM inventory_sync.tracked");
    exec("RESET ROLE");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked"), 1);
}

#[pg_test]
fn untrack_and_drop() {
    tracked_products();
    upsert_in("products", P1, r#"{"name": "Laptop"}"#, "2024-03-01 10:00+00");
    exec("SELECT inventory_sync.untrack('products')");
    let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{}}', now())"));
    assert_eq!(state, "55000");
    assert_eq!(count("SELECT count(*) FROM products"), 1, "untrack keeps the rows");
    exec("SELECT inventory_sync.track('products')");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked_tables"), 1);
    exec("DROP TABLE products");
    assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked"), 0, "a dropped table leaves tracking");
}

#[pg_test]
fn altered_tables_keep_working() {
    tracked_products();
    upsert_in("products", P1, r#"{"name": "Laptop", "stock": 1}"#, "2024-03-01 10:00+00");
    // Column added: usable at once.
    exec("ALTER TABLE products ADD COLUMN weight real");
    assert_eq!(upsert_in("products", P1, r#"{"weight": 1.5, "stock": 2}"#, "2024-03-01 10:01+00")["status"], "applied");
    // Column renamed: the new name works, the old one is unknown.
    exec("ALTER TABLE products RENAME COLUMN stock TO quantity");
    assert_eq!(upsert_in("products", P1, r#"{"quantity": 3}"#, "2024-03-01 10:02+00")["status"], "applied");
    let (state, _) =
        sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{\"stock\": 4}}', now())"));
    assert_eq!(state, "42703");
    // Type changed: values are converted to the new type.
    exec("ALTER TABLE products DROP COLUMN total");
    exec("ALTER TABLE products ALTER COLUMN quantity TYPE text");
    assert_eq!(upsert_in("products", P1, r#"{"quantity": "a few"}"#, "2024-03-01 10:03+00")["status"], "applied");
    // Column dropped: now an unknown key.
    exec("ALTER TABLE products DROP COLUMN weight");
    let (state, _) =
        sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{\"weight\": 1}}', now())"));
    assert_eq!(state, "42703");
    // The timestamp column renamed: tracking follows it.
    exec("ALTER TABLE products RENAME COLUMN updated_at TO modified_at");
    let stale = upsert_in("products", P1, r#"{"quantity": "none"}"#, "2024-03-01 09:00+00");
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["server_data"]["quantity"], "a few");
    assert_eq!(stale["server_data"]["modified_at"], "2024-03-01T10:03:00+00:00");
    // The timestamp column dropped: a clear error, nothing written.
    exec("ALTER TABLE products DROP COLUMN modified_at");
    let (state, msg) = sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{}}', now())"));
    assert_eq!((state.as_str(), msg.as_str()), ("55000", "table public.products can no longer be synced"));
}

#[pg_test]
fn hostile_identifiers_and_values() {
    setup();
    exec(r#"CREATE SCHEMA "we;ird $$ schema""#);
    exec(
        r#"CREATE TABLE "we;ird $$ schema"."Tab""le -- x" (
                "Key; DROP TABLE x" text PRIMARY KEY,
                "quo""te" text, "semi;colon" text, "Mixed Case" integer, "ünïcode ✓" text,
                "back\slash" text, "$$" text, "--" text, "/*" text,
                "when" timestamptz)"#,
    );
    exec(r#"SELECT inventory_sync.track('"we;ird $$ schema"."Tab""le -- x"', 'when')"#);
    let payload = json!({
        "quo\"te": "'; DROP TABLE pg_class; --", "semi;colon": "$$ $x$ \\ \" '",
        "Mixed Case": 7, "ünïcode ✓": "naïve ✓ 🚀", "back\\slash": "\\x00\\\\", "$$": "$$",
        "--": "/* */", "/*": "*/ SELECT 1; --"});
    let table = r#""we;ird $$ schema"."Tab""le -- x""#;
    let id = "it's \"the\" key; --";
    let answer = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, $3, '2024-03-01 10:00+00')",
        &[table.into(), id.into(), pgrx::JsonB(payload.clone()).into()],
    )
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(answer["status"], "applied");
    assert_eq!(answer["id"], id);
    let mut want = payload.as_object().unwrap().clone();
    want.insert("Key; DROP TABLE x".into(), json!(id));
    want.insert("when".into(), json!("2024-03-01T10:00:00+00:00"));
    assert_eq!(json(&format!("SELECT to_jsonb(t) FROM {table} t")), Value::Object(want));
    let stale = Spi::get_one_with_args::<pgrx::JsonB>(
        "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, '{\"--\": \"x\"}', '2024-03-01 09:00+00')",
        &[table.into(), id.into()],
    )
    .unwrap()
    .unwrap()
    .0;
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["server_data"]["--"], "/* */");
    assert_eq!(Spi::get_one::<String>("SELECT table_name FROM inventory_sync.conflicts").unwrap().unwrap(), table);
}

#[pg_test]
fn tracked_hostile_search_path() {
    tracked_products();
    upsert_in("products", P1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 10:05+00");
    upsert_in(
        "products",
        "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        r#"{"name": "Other", "stock": 99}"#,
        "2024-03-01 10:05+00",
    );
    exec("CREATE FUNCTION public.evil_eq(uuid, uuid) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$");
    exec("CREATE OPERATOR public.= (LEFTARG = uuid, RIGHTARG = uuid, FUNCTION = public.evil_eq)");
    exec("CREATE FUNCTION public.evil_le(timestamptz, timestamptz) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$");
    exec("CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_le)");
    exec("CREATE FUNCTION public.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT '{\"hijacked\": true}'::jsonb $$");
    exec("CREATE FUNCTION public.jsonb_populate_record(anyelement, jsonb) RETURNS anyelement LANGUAGE sql AS $$ SELECT $1 $$");
    exec("CREATE FUNCTION public.evil_text_eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$");
    exec("CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_text_eq)");
    exec("CREATE TABLE public.skus (sku text PRIMARY KEY, qty integer, updated_at timestamptz)");
    exec("SELECT inventory_sync.track('public.skus')");
    upsert_in("skus", "A-1", r#"{"qty": 1}"#, "2024-03-01 10:05+00");
    upsert_in("skus", "B-2", r#"{"qty": 2}"#, "2024-03-01 10:05+00");
    exec("SET search_path = public, pg_catalog");
    let sku = upsert_in("skus", "A-1", r#"{"qty": 5}"#, "2024-03-01 10:00+00");
    assert_eq!(sku["status"], "conflict");
    assert_eq!(sku["server_data"], json!({"sku": "A-1", "qty": 1, "updated_at": "2024-03-01T10:05:00+00:00"}));
    assert_eq!(upsert_in("skus", "B-2", r#"{"qty": 7}"#, "2024-03-01 10:10+00")["status"], "applied");
    let stale = upsert_in("products", P1, r#"{"stock": 8}"#, "2024-03-01 10:00+00");
    assert_eq!(stale["status"], "conflict");
    assert_eq!(stale["server_data"]["stock"], 10);
    assert_eq!(stale["server_data"]["name"], "Laptop");
    assert_eq!(upsert_in("products", P1, r#"{"stock": 12}"#, "2024-03-01 10:10+00")["status"], "applied");
    exec("RESET search_path");
    assert_eq!(count("SELECT sum(stock)::bigint FROM products"), 111);
    assert_eq!(json("SELECT jsonb_object_agg(sku, qty) FROM skus"), json!({"A-1": 1, "B-2": 7}));
}

// ---- the sync protocol ----
