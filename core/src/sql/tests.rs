//! The statements' tests: what they bind, and that nothing resolves through search_path.

use super::*;

#[test]
fn tracked_statements_bind_every_value() {
    let cols = ["name", "\"Stock\""];
    assert_eq!(
        tracked_merge_update("public.products", "id", "updated_at", &cols),
        "UPDATE public.products AS stored SET name = $4, \"Stock\" = $5, updated_at = $2 \
         WHERE stored.id OPERATOR(pg_catalog.=) $1 RETURNING pg_catalog.jsonb_build_object(\
         'status', 'applied', 'id', stored.id, 'updated_at', stored.updated_at, 'created', false)"
    );
    let update = tracked_update("public.products", 7, "id", "updated_at", &cols);
    assert!(
        update.starts_with(
            "UPDATE public.products AS stored SET name = $4, \"Stock\" = $5, updated_at = $2 \
          WHERE stored.id OPERATOR(pg_catalog.=) $1 AND (stored.updated_at IS NULL OR"
        ),
        "{update}"
    );
    let insert = tracked_insert("public.products", "id", "updated_at", &cols);
    assert!(
        insert.starts_with(
            "INSERT INTO public.products AS stored (id, updated_at, name, \"Stock\") \
         VALUES ($1, $2, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING"
        ),
        "{insert}"
    );
    assert!(insert.ends_with("'created', true)"), "{insert}");
}

#[test]
fn an_empty_payload_writes_only_the_timestamp() {
    assert!(tracked_update("t", 1, "k", "ts", &[]).starts_with("UPDATE t AS stored SET ts = $2 WHERE"));
    assert!(tracked_insert("t", "k", "ts", &[]).contains("(k, ts) VALUES ($1, $2) ON CONFLICT"));
}

/// Every operator and function the statements use is qualified with pg_catalog.
#[test]
fn nothing_resolves_through_search_path() {
    let all = [
        default_upsert(false),
        default_upsert(true),
        tracked_update("t", 1, "k", "ts", &["a"]),
        tracked_insert("t", "k", "ts", &["a"]),
        tracked_lock("t", 1, "k", "ts"),
        tracked_lock_for_merge("t", 1, "k", "ts"),
        tracked_merge_update("t", "k", "ts", &["a"]),
        default_merge_update(),
        default_merge_insert(),
        DEFAULT_LOCK_FOR_MERGE.to_string(),
        DEFAULT_DROP_CLOCKS.to_string(),
        tracked_tombstone_clock(1),
        FIELD_POLICIES.to_string(),
        SET_POLICY.to_string(),
        CLEAR_POLICY.to_string(),
        default_delete(),
        conflict(DEFAULT_SERVER_ROW),
        reject(&tracked_server_row("t", 1, "k", "'k'", "'ts'")),
        tracked_delete("t", 1, "k", "ts"),
        tracked_tombstone(1),
        tracked_record(1, false),
        tracked_record_update(1),
        tracked_update_older("t", "k", "ts", &["a", "b"]),
        tracked_record(1, true),
        feed(true),
        tracked_rows("t", "k", "ts", "uuid"),
        purge_tombstones(),
        PURGE_MUTATIONS.to_string(),
        MUTATION_FORGET.to_string(),
        MUTATION_CLAIM.to_string(),
        MUTATION_REPLAY.to_string(),
        ERA_LATEST.to_string(),
        ERA_PREVIOUS_END.to_string(),
        ERA_START.to_string(),
        PURGE_HORIZON.to_string(),
        FEED_READABLE.to_string(),
        feed(false),
    ];
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
