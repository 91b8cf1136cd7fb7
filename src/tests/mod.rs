//! Behaviour inside PostgreSQL: `cargo pgrx test` runs each test in its own transaction.
//! Errors are checked by SQLSTATE through a PL/pgSQL helper that traps them.
//!
//! pgrx calls every test as a function of the schema `tests`, so all of them live in the one
//! `#[pg_schema] mod tests` below; the files, one per behaviour, are included into it:
//! `default_table`, `tracked_tables`, `deletes`, `retries_and_push`, `pull`, `merge_policies`,
//! `push_groups`, `shard_keys`, `rejections`, `versions`, `ordering`. The helpers here are shared by all.

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
        let got =
            Spi::get_one_with_args::<Vec<String>>("SELECT pg_temp.sqlstate_of($1)", &[stmt.into()]).unwrap().unwrap();
        (got[0].clone(), got[1].clone())
    }

    fn upsert(id: i64, payload: &str, ts: &str) -> Value {
        json(&format!("SELECT inventory_sync.sync_upsert({id}, '{payload}'::jsonb, '{ts}'::timestamptz)"))
    }

    /// The answer without its `version`, which must be one (16 lowercase hex digits): versions
    /// are the server's clock, so whole-answer comparisons leave them out.
    fn versioned(mut answer: Value) -> Value {
        let version = answer.as_object_mut().and_then(|a| a.remove("version"));
        let ok = version
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|v| v.len() == 16 && v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(ok, "no version in {answer}: {version:?}");
        answer
    }

    fn setup() {
        exec("SET TimeZone = 'UTC'");
        exec("SET inventory_sync.max_clock_skew = -1");
    }

    include!("default_table.rs");
    include!("tracked_tables.rs");
    include!("deletes.rs");
    include!("retries_and_push.rs");
    include!("pull.rs");
    include!("merge_policies.rs");
    include!("push_groups.rs");
    include!("shard_keys.rs");
    include!("rejections.rs");
    include!("versions.rs");
    include!("ordering.rs");
}
