//! Behaviour inside PostgreSQL: `cargo pgrx test` runs each test in its own transaction.
//! Errors are checked by SQLSTATE through a PL/pgSQL helper that traps them.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;
    use serde_json::{json, Value};

    fn exec(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn json(sql: &str) -> Value {
        Spi::get_one::<pgrx::JsonB>(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .unwrap_or_else(|| panic!("{sql}: returned NULL"))
            .0
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    /// The SQLSTATE and message the statement fails with (its effects rolled back), or "00000".
    fn sqlstate_of(stmt: &str) -> (String, String) {
        exec(
            "DO $d$ BEGIN
             IF pg_catalog.to_regprocedure('pg_temp.sqlstate_of(text)') IS NULL THEN
             CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text[]
             LANGUAGE plpgsql AS $f$
             DECLARE msg text;
             BEGIN
                 EXECUTE stmt;
                 RETURN ARRAY['00000', ''];
             EXCEPTION WHEN OTHERS THEN
                 GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
                 RETURN ARRAY[SQLSTATE, msg];
             END $f$;
             END IF;
             END $d$",
        );
        let got = Spi::get_one_with_args::<Vec<String>>(
            "SELECT pg_temp.sqlstate_of($1)",
            &[stmt.into()],
        )
        .unwrap()
        .unwrap();
        (got[0].clone(), got[1].clone())
    }

    fn upsert(id: i64, payload: &str, ts: &str) -> Value {
        json(&format!(
            "SELECT inventory_sync.sync_upsert({id}, '{payload}'::jsonb, '{ts}'::timestamptz)"
        ))
    }

    fn setup() {
        exec("SET TimeZone = 'UTC'");
        exec("SET inventory_sync.max_clock_skew = -1");
    }

    #[pg_test]
    fn insert_answers_created() {
        setup();
        let answer = upsert(1, r#"{"name": "Laptops", "stock": 10}"#, "2024-01-01 10:00+00");
        assert_eq!(
            answer,
            json!({"status": "applied", "id": 1, "created": true,
                   "updated_at": "2024-01-01T10:00:00+00:00"})
        );
        assert_eq!(
            json("SELECT data FROM inventory_sync.inventory WHERE id = 1"),
            json!({"name": "Laptops", "stock": 10})
        );
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
            answer,
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
        let text = Spi::get_one::<String>(
            "SELECT data::text FROM inventory_sync.inventory WHERE id = 1",
        )
        .unwrap()
        .unwrap();
        assert!(text.contains("12345678901234567.891"), "{text}");
        assert!(text.contains("\"scale\": 1.50"), "{text}");
        assert_eq!(
            count("SELECT length((data->>'huge')) FROM inventory_sync.inventory WHERE id = 1"),
            401
        );
    }

    #[pg_test]
    fn clock_skew_rejects_and_journals() {
        setup();
        exec("SET inventory_sync.max_clock_skew = '5min'");
        upsert(1, r#"{"stock": 10}"#, "2024-01-01 10:00+00");
        let answer = json(
            "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 99}', now() + interval '1 hour')",
        );
        assert_eq!(answer["status"], "rejected");
        assert_eq!(answer["reason"], "clock_skew");
        assert_eq!(answer["id"], 1);
        assert_eq!(answer["max_clock_skew_seconds"], 300);
        assert_eq!(answer["ahead_by_seconds"], 3600.0);
        assert!(answer["server_time"].is_string() && answer["client_ts"].is_string());
        assert!(answer["message"].as_str().unwrap().contains("max_clock_skew"));
        assert_eq!(json("SELECT data->'stock' FROM inventory_sync.inventory WHERE id = 1"), json!(10));
        assert_eq!(
            json("SELECT jsonb_build_object('reason', reason, 'stock', server_data->'stock')
                    FROM inventory_sync.conflicts"),
            json!({"reason": "clock_skew", "stock": 10})
        );
        // Within the margin: applied.
        let near = json(
            "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 11}', now() + interval '4 min')",
        );
        assert_eq!(near["status"], "applied");
        // A rejected write for a row that does not exist is journaled without server_data.
        let fresh = json("SELECT inventory_sync.sync_upsert(2, '{}', now() + interval '1 day')");
        assert_eq!(fresh["status"], "rejected");
        assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2"), 0);
        assert_eq!(
            count("SELECT count(*) FROM inventory_sync.conflicts WHERE row_id = '2' AND server_data IS NULL"),
            1
        );
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
        assert_eq!(
            Spi::get_one::<String>("SHOW inventory_sync.max_clock_skew").unwrap().unwrap(),
            "2h"
        );
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
            ("SELECT inventory_sync.sync_upsert(1, '{\"id\": 2}', now())", "22023", "payload key \"id\" does not match the id argument"),
            ("SELECT inventory_sync.sync_upsert(1, '{\"id\": \"one\"}', now())", "22023", "payload key \"id\" does not match the id argument"),
            ("SELECT inventory_sync.sync_upsert(1, '{\"id\": true}', now())", "22023", "payload key \"id\" does not match the id argument"),
            ("SELECT inventory_sync.sync_upsert(1, '{\"id\": 1.5}', now())", "22023", "payload key \"id\" does not match the id argument"),
            ("SELECT inventory_sync.sync_upsert(1, '{not json', now())", "22P02", "invalid input syntax for type json"),
            ("SELECT inventory_sync.sync_upsert(1, '{}', 'yesterday-ish')", "22007", "invalid input syntax for type timestamp with time zone: \"yesterday-ish\""),
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
        exec("CREATE FUNCTION public.evil_concat(jsonb, jsonb) RETURNS jsonb
                  LANGUAGE sql AS $$ SELECT '{\"hijacked\": true}'::jsonb $$");
        exec("CREATE OPERATOR public.|| (LEFTARG = jsonb, RIGHTARG = jsonb, FUNCTION = public.evil_concat)");
        exec("CREATE FUNCTION public.evil_le(timestamptz, timestamptz) RETURNS boolean
                  LANGUAGE sql AS $$ SELECT true $$");
        exec("CREATE OPERATOR public.<= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.evil_le)");
        exec("CREATE FUNCTION public.evil_eq(bigint, bigint) RETURNS boolean
                  LANGUAGE sql AS $$ SELECT true $$");
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
        assert_eq!(
            json("SELECT data FROM inventory_sync.inventory WHERE id = 1"),
            json!({"stock": 12, "name": "Laptops"})
        );
        assert_eq!(
            json("SELECT data FROM inventory_sync.inventory WHERE id = 2"),
            json!({"stock": 99, "name": "Tablets"})
        );
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
            created,
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
            json("SELECT jsonb_build_object('row_id', row_id, 'table', table_name, 'reason', reason,
                         'payload', client_payload, 'server_stock', server_data->'stock')
                    FROM inventory_sync.conflicts"),
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
        assert_eq!(json("SELECT jsonb_build_object('p', price, 'a', attrs) FROM products"), json!({"p": null, "a": "plain"}));
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
            (call(r#"{"min_order": 0}"#), "23514", "invalid value for column \"min_order\" of table public.products: value for domain positive violates check constraint \"positive_check\""),
            (call(r#"{"color": "blue"}"#), "22P02", "invalid value for column \"color\" of table public.products: invalid input value for enum color: \"blue\""),
            (call(r#"{"code": "TOOLONG"}"#), "22001", "invalid value for column \"code\" of table public.products: value too long for type character varying(4)"),
            (call(r#"{"made": "soon"}"#), "22007", "invalid value for column \"made\" of table public.products: invalid input syntax for type timestamp with time zone: \"soon\""),
            (call(r#"{"sizes": ["x"]}"#), "22P02", "invalid value for column \"sizes\" of table public.products: invalid input syntax for type integer: \"x\""),
            (call(r#"{"name": null}"#), "23502", "null value in column \"name\" of relation \"products\" violates not-null constraint"),
            (call(r#"[1]"#), "22023", "payload must be a JSON object"),
            (format!("SELECT inventory_sync.sync_upsert_in('products', 'not-a-uuid', '{{}}', now())"), "22P02",
             "invalid value for column \"id\" of table public.products: invalid input syntax for type uuid: \"not-a-uuid\""),
            ("SELECT inventory_sync.sync_upsert_in(NULL, '1', '{}', now())".into(), "22004", "tbl must not be null"),
            (format!("SELECT inventory_sync.sync_upsert_in('products', NULL, '{{}}', now())"), "22004", "id must not be null"),
            ("SELECT inventory_sync.sync_upsert_in('no_such_table', '1', '{}', now())".into(), "42P01", "relation \"no_such_table\" does not exist"),
            // A new row lacking a NOT NULL column without default.
            ("SELECT inventory_sync.sync_upsert_in('products', 'c0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"stock\": 1}', now())".into(),
             "23502", "null value in column \"name\" of relation \"products\" violates not-null constraint"),
        ];
        for (stmt, want_state, want_msg) in cases {
            let (state, msg) = sqlstate_of(&stmt);
            assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
        }
        assert_eq!(count("SELECT count(*) FROM products"), 1);
        assert_eq!(json("SELECT to_jsonb(name) FROM products"), json!("Laptop"));
        assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts"), 0);
        // The id key may repeat the id, in any spelling of the same value.
        let same = upsert_in("products", P1, &format!(r#"{{"id": "{}", "stock": 2}}"#, P1.to_uppercase()), "2024-03-01 11:00+00");
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
        for (typ, id, answer_id) in [("bigint", "9007199254740993", json!(9007199254740993_i64)),
                                     ("integer", "42", json!(42)),
                                     ("text", "SKU-1", json!("SKU-1")),
                                     ("uuid", P1, json!(P1))] {
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
        exec("CREATE TABLE gen_ts (id bigint PRIMARY KEY, t timestamptz,
                                   updated_at timestamptz GENERATED ALWAYS AS (t) STORED)");
        exec("CREATE VIEW a_view AS SELECT 1 AS id");
        let cases = [
            ("SELECT inventory_sync.track('no_pk')", "42P16", "table public.no_pk has no single-column primary key"),
            ("SELECT inventory_sync.track('two_pk')", "42P16", "table public.two_pk has no single-column primary key"),
            ("SELECT inventory_sync.track('small_pk')", "42804", "primary key column \"id\" of table public.small_pk has type smallint"),
            ("SELECT inventory_sync.track('no_ts')", "42703", "column \"updated_at\" of table public.no_ts does not exist"),
            ("SELECT inventory_sync.track('date_ts')", "42804", "column \"updated_at\" of table public.date_ts cannot be the write-timestamp column"),
            ("SELECT inventory_sync.track('gen_ts')", "42804", "column \"updated_at\" of table public.gen_ts cannot be the write-timestamp column"),
            ("SELECT inventory_sync.track('a_view')", "42809", "public.a_view is not a table"),
            ("SELECT inventory_sync.track('inventory_sync.conflicts')", "42809", "cannot track inventory_sync's own table inventory_sync.conflicts"),
            ("SELECT inventory_sync.track(NULL)", "22004", "tbl must not be null"),
            ("SELECT inventory_sync.track('no_ts', NULL)", "22004", "ts_column must not be null"),
            ("SELECT inventory_sync.untrack('no_ts')", "55000", "table public.no_ts is not tracked"),
            ("SELECT inventory_sync.sync_upsert_in('no_ts', '1', '{}', now())", "55000", "table public.no_ts is not tracked"),
        ];
        for (stmt, want_state, want_msg) in cases {
            let (state, msg) = sqlstate_of(stmt);
            assert_eq!((state.as_str(), msg.as_str()), (want_state, want_msg), "{stmt}");
        }
        assert_eq!(count("SELECT count(*) FROM inventory_sync.tracked"), 0);
        // Naming the right column works.
        exec("SELECT inventory_sync.track('no_ts', 'modified')");
        assert_eq!(
            json("SELECT to_jsonb(t) - 'tracked_at' FROM inventory_sync.tracked_tables t"),
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
        let (state, _) = sqlstate_of("INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum) VALUES ('public.owned', 1, 2)");
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
        let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{\"stock\": 4}}', now())"));
        assert_eq!(state, "42703");
        // Type changed: values are converted to the new type.
        exec("ALTER TABLE products DROP COLUMN total");
        exec("ALTER TABLE products ALTER COLUMN quantity TYPE text");
        assert_eq!(upsert_in("products", P1, r#"{"quantity": "a few"}"#, "2024-03-01 10:03+00")["status"], "applied");
        // Column dropped: now an unknown key.
        exec("ALTER TABLE products DROP COLUMN weight");
        let (state, _) = sqlstate_of(&format!("SELECT inventory_sync.sync_upsert_in('products', '{P1}', '{{\"weight\": 1}}', now())"));
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
        exec(r#"CREATE TABLE "we;ird $$ schema"."Tab""le -- x" (
                    "Key; DROP TABLE x" text PRIMARY KEY,
                    "quo""te" text, "semi;colon" text, "Mixed Case" integer, "ünïcode ✓" text,
                    "back\slash" text, "$$" text, "--" text, "/*" text,
                    "when" timestamptz)"#);
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
        ).unwrap().unwrap().0;
        assert_eq!(answer["status"], "applied");
        assert_eq!(answer["id"], id);
        let mut want = payload.as_object().unwrap().clone();
        want.insert("Key; DROP TABLE x".into(), json!(id));
        want.insert("when".into(), json!("2024-03-01T10:00:00+00:00"));
        assert_eq!(json(&format!("SELECT to_jsonb(t) FROM {table} t")), Value::Object(want));
        let stale = Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT inventory_sync.sync_upsert_in($1::regclass, $2, '{\"--\": \"x\"}', '2024-03-01 09:00+00')",
            &[table.into(), id.into()],
        ).unwrap().unwrap().0;
        assert_eq!(stale["status"], "conflict");
        assert_eq!(stale["server_data"]["--"], "/* */");
        assert_eq!(
            Spi::get_one::<String>("SELECT table_name FROM inventory_sync.conflicts").unwrap().unwrap(),
            table
        );
    }

    #[pg_test]
    fn tracked_hostile_search_path() {
        tracked_products();
        upsert_in("products", P1, r#"{"name": "Laptop", "stock": 10}"#, "2024-03-01 10:05+00");
        upsert_in("products", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", r#"{"name": "Other", "stock": 99}"#, "2024-03-01 10:05+00");
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
            delete(1, "2024-03-01 10:05+00"),
            json!({"status": "applied", "id": 1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"})
        );
        // An older offline edit arriving later: a conflict showing the item as deleted.
        assert_eq!(
            upsert(1, r#"{"stock": 8}"#, "2024-03-01 10:01+00"),
            json!({"status": "conflict", "id": 1,
                   "server_data": {"id": 1, "deleted": true, "updated_at": "2024-03-01T10:05:00+00:00"}})
        );
        // An older delete is a conflict too, and changes nothing.
        assert_eq!(delete(1, "2024-03-01 10:02+00")["status"], "conflict");
        // A newer edit brings the item back, with just its own fields.
        assert_eq!(upsert(1, r#"{"stock": 3}"#, "2024-03-01 10:10+00")["status"], "applied");
        assert_eq!(json("SELECT to_jsonb(i) - 'change_xid' - 'changed_at' - 'updated_by' - 'field_clocks' FROM inventory_sync.inventory i"),
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
            delete_in("products", P1, "2024-03-01 10:05+00"),
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
        assert_eq!(json("SELECT jsonb_build_object('name', name, 'stock', stock) FROM products"),
                   json!({"name": "Laptop 2", "stock": 0}));
        assert_eq!(json("SELECT to_jsonb(op) FROM inventory_sync.changes"), json!("upsert"));
        assert_eq!(delete_in("products", P1, "2024-03-01 10:09+00")["status"], "conflict");
        assert_eq!(count("SELECT count(*) FROM products"), 1);
        // A row the server never had: a tombstone, so the older creation loses.
        let other = "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert_eq!(delete_in("products", other, "2024-03-01 12:00+00")["status"], "applied");
        assert_eq!(upsert_in("products", other, r#"{"name": "Ghost"}"#, "2024-03-01 11:00+00")["status"], "conflict");
        let (state, _) = sqlstate_of("SELECT inventory_sync.sync_delete_in('products', 'x', now())");
        assert_eq!(state, "22P02");
    }

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
        assert_eq!(json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 11}', '2024-03-01 10:01+00', 'phone-b', 'm1')")["status"], "applied");
        // Deletes, conflicts and rejections are remembered too.
        let gone = json("SELECT inventory_sync.sync_delete(1, '2024-03-01 10:02+00', 'phone-a', 'm2')");
        assert_eq!(json("SELECT inventory_sync.sync_delete(1, '2024-03-01 10:02+00', 'phone-a', 'm2')")["duplicate"], true);
        assert_eq!(gone["deleted"], true);
        let lost = json("SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 09:00+00', 'phone-a', 'm3')");
        assert_eq!(lost["status"], "conflict");
        assert_eq!(json("SELECT inventory_sync.sync_upsert(1, '{}', '2024-03-01 09:00+00', 'phone-a', 'm3')")["status"], "conflict");
        assert_eq!(count("SELECT count(*) FROM inventory_sync.conflicts WHERE mutation_id = 'm3'"), 1, "a duplicate is not journaled again");
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
        assert_eq!(json("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 5}', '2024-03-01 12:00+00', 'phone-a', 'm1')")["status"], "applied");
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
        let outcomes = push(json!([
            {"id": 2, "payload": {"n": 1}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 1, "payload": {"n": 1}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 1, "payload": {"n": 2}, "client_ts": "2024-03-01 10:01+00"},
            {"id": 1, "payload": {"n": 3}, "client_ts": "2024-03-01 10:00:30+00"},
            {"op": "delete", "id": 2, "client_ts": "2024-03-01 10:02+00"},
            {"table": "public.products", "id": P1, "payload": {"name": "x", "stock": "many"}, "client_ts": "2024-03-01 10:00+00"},
            {"table": "public.products", "id": P1, "payload": {"name": "x"}, "client_ts": "2024-03-01 10:00+00"},
            {"table": "no_such", "id": "1", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "payload": {}, "client_ts": "not a time"},
            {"id": 3, "payload": [], "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "client_ts": "2024-03-01 10:00+00"},
            {"op": "delete", "id": 3, "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"op": "merge", "id": 3, "client_ts": "2024-03-01 10:00+00"},
            {"id": "three", "payload": {}, "client_ts": "2024-03-01 10:00+00"},
            {"id": 3, "payload": {}, "client_ts": "2024-03-01 10:00+00", "extra": 1},
            "not an object",
        ]), false);
        let status: Vec<&str> = outcomes.as_array().unwrap().iter().map(|o| o["status"].as_str().unwrap()).collect();
        assert_eq!(status, ["applied", "applied", "applied", "conflict", "applied", "error", "applied",
                            "error", "error", "error", "error", "error", "error", "error", "error", "error"]);
        let states: Vec<&str> = outcomes.as_array().unwrap().iter().filter_map(|o| o["sqlstate"].as_str()).collect();
        assert_eq!(states, ["22P02", "42P01", "22007", "22023", "22023", "22023", "22023", "22023", "22023", "22023"]);
        assert_eq!(outcomes[5]["id"], P1);
        assert_eq!(outcomes[13]["message"], "id \"three\" is not a bigint, as the default table's ids are");
        assert_eq!(outcomes[14]["message"], "unknown key \"extra\" in change");
        // Changes to one row applied in the order given; the failed change wrote nothing.
        assert_eq!(json("SELECT data FROM inventory_sync.inventory WHERE id = 1"), json!({"n": 2}));
        assert_eq!(json("SELECT jsonb_build_object('name', name, 'stock', stock) FROM products"), json!({"name": "x", "stock": 0}));
        assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 2 AND deleted"), 1);
        assert_eq!(count("SELECT count(*) FROM inventory_sync.inventory WHERE id = 3"), 0);
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

    fn pull(since: Option<&str>, lim: i32) -> Value {
        Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT inventory_sync.sync_pull($1, $2)",
            &[since.into(), lim.into()],
        )
        .unwrap()
        .unwrap()
        .0
    }

    #[pg_test]
    fn pull_refuses_bad_arguments() {
        setup();
        // A transaction's own changes are above its snapshot's horizon, so a pull inside the
        // writing transaction (as every #[pg_test] is) sees none of them; the feed itself is
        // tested with committed transactions in pg_regress and the concurrency tests.
        upsert(1, "{}", "2024-03-01 10:00+00");
        // The cursor: the start position ("1:0:0:") in purge epoch 0 (never purged).
        assert_eq!(pull(None, 10), json!({"changes": [], "cursor": "MjowOjE6MDowOg", "has_more": false}));
        for (stmt, want) in [
            ("SELECT inventory_sync.sync_pull('not a cursor')", "22023"),
            ("SELECT inventory_sync.sync_pull(NULL, 0)", "22023"),
            ("SELECT inventory_sync.sync_pull(NULL, 100001)", "22023"),
            ("SELECT inventory_sync.sync_pull(NULL, NULL)", "22004"),
            ("SELECT inventory_sync.purge_tombstones('-1 day')", "22023"),
            ("SELECT inventory_sync.purge_tombstones(NULL)", "22004"),
        ] {
            let (state, _) = sqlstate_of(stmt);
            assert_eq!(state, want, "{stmt}");
        }
    }

    // ---- beyond last-write-wins ----

    #[pg_test]
    fn equal_timestamps_are_ordered_by_client_id() {
        tracked_products();
        let at = "2024-03-01 10:00+00";
        let up = |id: i64, v: i64, by: &str| json(&format!(
            "SELECT inventory_sync.sync_upsert({id}, '{{\"v\": {v}}}', '{at}', '{by}')"));
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
        let up_in = |v: i64, by: &str| Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT inventory_sync.sync_upsert_in('products', $1, jsonb_build_object('name', 'n', 'stock', $2::int), $3::timestamptz, $4)",
            &[P1.into(), v.into(), at.into(), by.into()]).unwrap().unwrap().0;
        assert_eq!(up_in(2, "phone-b")["status"], "applied");
        assert_eq!(up_in(1, "phone-a")["status"], "conflict");
        assert_eq!(up_in(3, "phone-c")["status"], "applied");
        assert_eq!(count("SELECT stock::bigint FROM products"), 3);
        let del = Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT inventory_sync.sync_delete_in('products', $1, $2::timestamptz, 'phone-a')",
            &[P1.into(), at.into()]).unwrap().unwrap().0;
        assert_eq!(del["status"], "conflict");
    }

    fn upsert_base(id: i64, payload: &str, ts: &str, base: &str) -> Value {
        json(&format!(
            "SELECT inventory_sync.sync_upsert({id}, '{payload}', '{ts}', base => '{base}')"
        ))
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
            ("SELECT inventory_sync.set_policy('products', 'colour', 'field_lww')", "42703", "payload key \"colour\" is not a column of table public.products"),
            ("SELECT inventory_sync.set_policy('products', 'id', 'field_lww')", "22023", "field \"id\" of table public.products cannot have a merge policy"),
            ("SELECT inventory_sync.set_policy('products', 'updated_at', 'field_lww')", "22023", "field \"updated_at\" of table public.products cannot have a merge policy"),
            ("SELECT inventory_sync.set_policy('products', 'total', 'field_lww')", "428C9", "payload key \"total\" names a generated column of table public.products"),
            ("SELECT inventory_sync.set_policy('products', 'name', 'delta')", "42804", "delta field \"name\" must be numeric"),
            ("SELECT inventory_sync.set_policy('untracked', 'x', 'delta')", "55000", "table public.untracked is not tracked"),
            ("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'updated_at', 'delta')", "22023", "field \"updated_at\" of table inventory_sync.inventory cannot have a merge policy"),
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
        let (state, msg) = sqlstate_of("SELECT inventory_sync.sync_upsert(1, '{\"stock\": \"lots\"}', now(), base => '{\"stock\": 1}')");
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
        let out = push(json!([{"id": 1, "payload": {"stock": 10}, "base": {"stock": 12}, "client_ts": "2024-03-01T10:07:00Z"}]), false);
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
        assert_eq!(json("SELECT jsonb_build_object('stock', stock, 'price', price) FROM products"),
                   serde_json::from_str::<Value>(r#"{"stock": 8, "price": 120.00}"#).unwrap());
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
        assert_eq!(
            json(r#"SELECT inventory_sync.clocks_without('{"a": {"ts": 1}, "b": {"ts": 2}}', '{"a": 5, "c": 1}')"#),
            json!({"b": {"ts": 2}})
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
}
