//! The statements' tests: what they bind, and that nothing resolves through search_path.

use super::*;

#[test]
fn tracked_statements_bind_every_value() {
    let cols = ["name", "\"Stock\""];
    assert_eq!(
        tracked_merge_update("public.products", "id", "updated_at", &cols),
        "UPDATE public.products AS stored SET name = $4, \"Stock\" = $5, updated_at = $2 \
         WHERE stored.id OPERATOR(pg_catalog.=) $1 RETURNING true"
    );
    let update = tracked_update_older("public.products", "id", "updated_at", &cols);
    assert!(
        update.starts_with(
            "UPDATE public.products AS stored SET name = $4, \"Stock\" = $5, updated_at = $2 \
          WHERE stored.id OPERATOR(pg_catalog.=) $1 \
            AND (stored.updated_at IS NULL OR stored.updated_at OPERATOR(pg_catalog.<) $2)"
        ),
        "{update}"
    );
    let insert = tracked_insert("public.products", "id", "updated_at", &cols);
    assert_eq!(
        insert,
        "INSERT INTO public.products AS stored (id, updated_at, name, \"Stock\") \
         VALUES ($1, $2, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING true"
    );
}

#[test]
fn an_empty_payload_writes_only_the_timestamp() {
    assert!(tracked_update_older("t", "k", "ts", &[]).starts_with("UPDATE t AS stored SET ts = $2 WHERE"));
    assert!(tracked_insert("t", "k", "ts", &[]).contains("(k, ts) VALUES ($1, $2) ON CONFLICT"));
}

/// What Citus routes to the node that holds a row: a statement on one table, without subqueries
/// in an INSERT, with only `excluded` columns and immutable operators in `DO UPDATE SET`, and
/// plain columns in `RETURNING`. Every statement that writes a row or its change record, and the
/// journal, keeps to that.
#[test]
fn writes_are_routable_by_citus() {
    let mut writes = vec![
        default_upsert(false, false),
        default_upsert(true, false),
        default_upsert(false, true),
        default_upsert(true, true),
        default_delete(false),
        default_delete(true),
        default_merge_update(),
        default_merge_insert(),
        DEFAULT_DROP_CLOCKS.to_string(),
        tracked_update_older("t", "k", "ts", &["a"]),
        tracked_merge_update("t", "k", "ts", &["a"]),
        tracked_insert("t", "k", "ts", &["a"]),
        tracked_delete_older("t", "k", "ts"),
        tracked_delete_locked("t", "k"),
    ];
    for side in Side::ALL {
        writes.extend([
            tracked_record(1, false, side),
            tracked_record(1, true, side),
            tracked_record_update(1, side),
            mutation_claim(side),
            mutation_remember(side),
            mutation_forget(side),
        ]);
    }
    // A function call (operators are written `OPERATOR(pg_catalog.op)`, casts `::pg_catalog.type`).
    let calls_a_function = |text: &str| {
        text.match_indices("pg_catalog.").any(|(i, m)| {
            let name: String = text[i + m.len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            !name.is_empty() && text[i + m.len() + name.len()..].starts_with('(')
        })
    };
    for sql in writes {
        assert!(!sql.contains("SELECT"), "a subquery in {sql}");
        if let Some((_, returning)) = sql.split_once("RETURNING") {
            assert!(!calls_a_function(returning), "a function in RETURNING of {sql}");
        }
        if let Some((_, set)) = sql.split_once("DO UPDATE") {
            assert!(!calls_a_function(set), "a function in DO UPDATE of {sql}");
        }
    }
    let clocks = Side::ALL.map(|side| tracked_record_clock(1, side));
    for sql in [tracked_lock("t", "k", "ts"), tracked_lock_for_merge("t", "k", "ts")].into_iter().chain(clocks) {
        assert_eq!(sql.matches(" FROM ").count(), 1, "one table in {sql}");
    }
    // The journal reads the stored row by joining it, not by a subquery in VALUES, and answers
    // a plain column.
    let rows = Side::ALL.map(|side| tracked_server_row("t", 1, "k", "'k'", "'ts'", side));
    for row in [DEFAULT_SERVER_ROW.to_string()].into_iter().chain(rows) {
        let sql = journal(&row);
        assert!(!sql.contains("VALUES") && !sql.contains("RETURNING"), "{sql}");
    }
}

/// Every operator and function the statements use is qualified with pg_catalog.
#[test]
fn nothing_resolves_through_search_path() {
    let mut all = vec![
        default_upsert(false, false),
        default_upsert(true, true),
        default_delete(true),
        DEFAULT_VERSION_LOCKED.to_string(),
        NOTIFY.to_string(),
        CLEAR_SERVER_CLOCK.to_string(),
        tracked_insert("t", "k", "ts", &["a"]),
        tracked_lock("t", "k", "ts"),
        tracked_lock_for_merge("t", "k", "ts"),
        tracked_delete_locked("t", "k"),
        tracked_merge_update("t", "k", "ts", &["a"]),
        default_merge_update(),
        default_merge_insert(),
        DEFAULT_LOCK_FOR_MERGE.to_string(),
        DEFAULT_DROP_CLOCKS.to_string(),
        FIELD_POLICIES.to_string(),
        SET_POLICY.to_string(),
        CLEAR_POLICY.to_string(),
        default_delete(false),
        journal(DEFAULT_SERVER_ROW),
        tracked_delete_older("t", "k", "ts"),
        tracked_update_older("t", "k", "ts", &["a", "b"]),
        tracked_rows("t", "k", "ts", "uuid"),
        purge_tombstones(),
        purge_mutations(),
        ERAS.to_string(),
        SNAPSHOT_XMIN.to_string(),
        HAS_CITUS.to_string(),
        NODE_HORIZONS.to_string(),
        PROBE_HORIZONS.to_string(),
        PROBE_FILL.to_string(),
        PROBE_KEYS.to_string(),
        IS_DISTRIBUTED.to_string(),
        IS_REPLICATED.to_string(),
        JOURNAL_ID_RANGES.to_string(),
        cohort_start(),
        ERA_GIVE.to_string(),
        era_start(),
        PURGE_HORIZON.to_string(),
        FEED_TABLES.to_string(),
        tracked_lock_routed("t", "k"),
        DISTRIBUTED_BY.to_string(),
        COLUMN_NUMBERS.to_string(),
        COLUMN_NUMBERS_ON_ALL_NODES.to_string(),
        SET_LOCALLY.to_string(),
        OWN_DISTRIBUTED.to_string(),
        MEMBERS_OF_TABLE.to_string(),
        COMMENTS_OF.to_string(),
        POLICIES_OF.to_string(),
        GRANTS_OF.to_string(),
        UNDISTRIBUTE_TABLE.to_string(),
        HAS_DROPPED_COLUMN.to_string(),
        ROW_GROUP.to_string(),
        DEFAULT_TABLE_GROUPS.to_string(),
        TRACKED_UNDISTRIBUTED.to_string(),
        DISTRIBUTE_TABLE.to_string(),
        SPREAD_AS.to_string(),
        DEFAULT_COLLATION.to_string(),
        feed(true, &[], 2),
        feed(true, &Side::ALL, 3),
        feed(false, &[Side::Uuid], 2),
    ];
    for side in Side::ALL {
        all.extend([
            tracked_record_clock(1, side),
            tracked_version(1, side),
            tracked_tombstone_clock(1, side),
            journal(&tracked_server_row("t", 1, "k", "'k'", "'ts'", side)),
            tracked_tombstone(1, side),
            tracked_record(1, false, side),
            tracked_record(1, true, side),
            tracked_record_update(1, side),
            feed(true, &[side], 1),
            feed(false, &[side], 2),
            mutation_forget(side),
            mutation_claim(side),
            mutation_replay(side),
            mutation_remember(side),
        ]);
    }
    all.extend(stamp_positions());
    all.extend(undelegate());
    for sql in all {
        for op in ["||", "<=", "-", "="] {
            for (i, _) in sql.match_indices(op) {
                let qualified = sql[..i].ends_with("pg_catalog.")
                    || (op == "=" && (sql[..i].ends_with("pg_catalog.<") || sql[..i].ends_with("pg_catalog.>")));
                // `SET col = …` and `, col = …` assign; they are not comparisons.
                let before = sql[..i].trim_end();
                let target = before.rsplit_once(' ').map(|(rest, _)| rest.trim_end());
                let assignment = op == "=" && target.is_some_and(|t| t.ends_with("SET") || t.ends_with(','));
                assert!(qualified || assignment, "bare {op} at {i} in {sql}");
            }
        }
        for func in [
            "jsonb_build_object(",
            "to_jsonb(",
            "now(",
            "pg_current_xact_id(",
            "jsonb_object_keys(",
            "jsonb_object_agg(",
            "unnest(",
            "to_json(",
            "max(",
            "pg_current_snapshot(",
            "pg_snapshot_xmin(",
            "has_table_privilege(",
            "quote_ident(",
        ] {
            for (i, _) in sql.match_indices(func) {
                assert!(sql[..i].ends_with("pg_catalog."), "unqualified {func} in {sql}");
            }
        }
    }
}

/// Every statement on one row's side rows names the row's shard key, which Citus routes by (the
/// writes store it, the reads and updates filter on it); without it a statement would go to every
/// shard of a distributed side table. A `uuid` or `text` table's statements name its own side
/// tables, and no other side's.
#[test]
fn side_rows_are_named_by_their_shard_key() {
    for side in Side::ALL {
        let tombstone_key = if side.keyed_by_key() { "$1" } else { "$9" };
        let filtered = [
            (tracked_record_clock(1, side), "$2"),
            (tracked_version(1, side), "$2"),
            (tracked_tombstone_clock(1, side), "$2"),
            (tracked_tombstone(1, side), "$4"),
            (tracked_record_update(1, side), "$7"),
            (mutation_replay(side), "$5"),
            (mutation_remember(side), "$5"),
            (mutation_forget(side), "$5"),
            (tracked_server_row("t", 1, "k", "'k'", "'ts'", side), tombstone_key),
        ];
        for (sql, param) in filtered {
            assert!(sql.contains(&format!("shard_key OPERATOR(pg_catalog.=) {param}")), "{sql}");
            let table = if sql.contains("mutation") { side.mutations() } else { side.changes() };
            assert!(sql.contains(&format!("{table} ")), "{sql}");
            for other in Side::ALL.into_iter().filter(|&s| s != side) {
                assert!(!sql.contains(&format!("{} ", other.changes())), "{sql}");
                assert!(!sql.contains(&format!("{} ", other.mutations())), "{sql}");
            }
        }
        for (sql, param) in [
            (tracked_record(1, false, side), "$7"),
            (tracked_record(1, true, side), "$7"),
            (mutation_claim(side), "$5"),
        ] {
            // The shard key column takes the shard key parameter.
            let (columns, values) = sql.split_once(") VALUES (").expect(&sql);
            let columns: Vec<&str> = columns.rsplit_once('(').expect(&sql).1.split(", ").collect();
            let values: Vec<&str> = values.split_once(") ON CONFLICT").expect(&sql).0.split(", ").collect();
            let at = columns.iter().position(|c| *c == "shard_key").expect(&sql);
            assert_eq!(values.get(at), Some(&param), "{sql}");
        }
    }
    // The journal is one table for every side.
    let rows = [Side::Uuid, Side::Text].map(|side| tracked_server_row("t", 1, "k", "'k'", "'ts'", side));
    for row in [DEFAULT_SERVER_ROW.to_string()].into_iter().chain(rows) {
        let sql = journal(&row);
        let (columns, values) = sql.split_once(") SELECT").expect(&sql);
        assert!(columns.ends_with(", shard_key"), "{sql}");
        assert!(values.contains("$9"), "{sql}");
    }
}

/// The feed reads the side tables asked for, and only those.
#[test]
fn the_feed_reads_each_side_asked_for() {
    let all = feed(true, &Side::ALL, 1);
    for side in Side::ALL {
        assert!(all.contains(&format!("FROM {} c", side.changes())), "{all}");
    }
    let uuid_only = feed(false, &[Side::Uuid], 1);
    assert!(uuid_only.contains("FROM inventory_sync.changes_uuid c"));
    for other in [Side::Bigint, Side::Text] {
        assert!(!uuid_only.contains(&format!("FROM {} c", other.changes())), "{uuid_only}");
    }
    assert!(!uuid_only.contains("inventory_sync.inventory"));
    assert!(!feed(true, &[], 1).contains("inventory_sync.changes"));
}

/// The typed calls of each key type are delegated colocated with the table that key type's tables
/// are colocated with (`Side::colocated_with`), so a delegated call runs where its row and side
/// rows are; the text form is not (see `DELEGATED`); and `undistribute()` undoes every delegation
/// and every trigger `distribute()` made.
#[test]
fn each_key_types_calls_are_delegated_where_its_rows_are() {
    use crate::tracking::oid;
    for (key_type, name) in [(oid::INT8, "bigint"), (oid::UUID, "uuid")] {
        let with = Side::colocated_with(key_type).expect("a colocated key type");
        for function in ["sync_upsert_in", "sync_delete_in"] {
            let signature = format!("inventory_sync.{function}(regclass, {name},");
            let delegated: Vec<_> = DELEGATED.iter().filter(|(f, ..)| f.starts_with(&signature)).collect();
            assert_eq!(delegated.len(), 1, "{signature}");
            assert_eq!((delegated[0].1, delegated[0].2), ("$2", with), "{signature}");
        }
    }
    assert!(!DELEGATED.iter().any(|(f, ..)| f.contains("(regclass, text,")));
    assert_eq!(Side::colocated_with(oid::TEXT), Some(Side::Text.changes()));
    assert_eq!(Side::colocated_with(oid::INT4), None);
    let undone = undelegate();
    for (function, ..) in DELEGATED {
        assert!(undone.iter().any(|u| u.contains(&format!("'{function}'::pg_catalog.regprocedure"))), "{function}");
    }
    for trigger in stamp_positions() {
        let table = trigger.split(" ON ").nth(1).and_then(|rest| rest.split_whitespace().next()).expect(&trigger);
        assert!(undone.contains(&format!("DROP TRIGGER IF EXISTS stamp_position ON {table}")), "{table}");
    }
}

/// The statement that forgets a table's server ordering names the policy set_ordering records.
#[test]
fn server_clock_is_one_name() {
    assert!(CLEAR_SERVER_CLOCK.contains(&format!("'{}'", crate::rules::SERVER_CLOCK)));
}
