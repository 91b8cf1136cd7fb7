//! The SQL text the extension runs, built here as plain strings (no pgrx), so the builders are
//! unit-tested. Identifiers arrive already quoted (`quote_identifier`); values are never part of
//! the text: they are always `$n` parameters.
//!
//! Every function, operator and type is schema-qualified (`OPERATOR(pg_catalog.=)`), so objects a
//! user creates in another schema are never picked up, whatever the caller's `search_path`.
//!
//! Parameters shared by the conflict and rejection statements: `$1` the key (typed as the key
//! column), `$2` the payload as sent, `$3` client_ts, `$4` the table's qualified name.

/// The default table, `inventory_sync.inventory`.
pub const DEFAULT_TABLE: &str = "inventory_sync.inventory";

/// The stored row as a client stores it, for the default table: the fields of `data` plus `id`
/// and `updated_at`.
pub const DEFAULT_SERVER_ROW: &str = "s.data OPERATOR(pg_catalog.||) \
     pg_catalog.jsonb_build_object('id', s.id, 'updated_at', s.updated_at)";

/// The stored row as a client stores it, for a tracked table: every column.
pub const TRACKED_SERVER_ROW: &str = "pg_catalog.to_jsonb(s.*)";

/// The `applied` answer, from the row version the statement wrote; `created` is an SQL boolean
/// expression.
fn returning_applied(key: &str, ts: &str, created: &str) -> String {
    format!(
        "RETURNING pg_catalog.jsonb_build_object(\
         'status', 'applied', 'id', stored.{key}, 'updated_at', stored.{ts}, 'created', {created})"
    )
}

/// The check and the write in one statement, for the default table. Parameters: `$1` id, `$2`
/// payload, `$3` client_ts.
///
/// `ON CONFLICT DO UPDATE` locks the existing row and evaluates the `WHERE` against its latest
/// committed version (waiting for a concurrent writer to finish first), so no interleaving lets
/// an older `client_ts` overwrite a newer one. When the `WHERE` fails, nothing is returned and
/// the row stays locked until the transaction ends. `xmax = 0` tells a fresh insert from an
/// update: the updated row version carries the lock `ON CONFLICT` took.
pub fn default_upsert() -> String {
    format!(
        "INSERT INTO {DEFAULT_TABLE} AS stored (id, data, updated_at) \
         VALUES ($1, $2 OPERATOR(pg_catalog.-) '{{id,updated_at}}'::pg_catalog.text[], $3) \
         ON CONFLICT (id) DO UPDATE \
            SET data = stored.data OPERATOR(pg_catalog.||) excluded.data, \
                updated_at = excluded.updated_at \
          WHERE stored.updated_at OPERATOR(pg_catalog.<=) excluded.updated_at \
         {}",
        returning_applied("id", "updated_at", "stored.xmax OPERATOR(pg_catalog.=) 0")
    )
}

// Tracked tables cannot use the single INSERT … ON CONFLICT DO UPDATE: PostgreSQL checks NOT NULL
// constraints on the proposed insert row before it looks for a conflict, so a partial update
// (`{"stock": 8}`) of a table with a NOT NULL column would fail. They update, else lock and look,
// else insert (see `catalog::Tracked::write`). Parameters of all three: `$1` key, `$2`
// client_ts, `$3…` the written columns' values in order.

/// A write-timestamp that a write stamped `$2` may replace. A row whose timestamp is NULL
/// (written outside sync) counts as older than any write.
fn writable(ts: &str) -> String {
    format!("(stored.{ts} IS NULL OR stored.{ts} OPERATOR(pg_catalog.<=) $2)")
}

/// Apply the write to an existing row that is not newer. At READ COMMITTED, UPDATE re-checks its
/// WHERE against the latest version of a row a concurrent transaction changed.
pub fn tracked_update(table: &str, key: &str, ts: &str, columns: &[&str]) -> String {
    let mut sets = String::new();
    for (i, col) in columns.iter().enumerate() {
        sets.push_str(&format!("{col} = ${}, ", i + 3));
    }
    format!(
        "UPDATE {table} AS stored SET {sets}{ts} = $2 \
          WHERE stored.{key} OPERATOR(pg_catalog.=) $1 AND {} {}",
        writable(ts),
        returning_applied(key, ts, "false")
    )
}

/// Insert the row if there is none; columns not written get their defaults.
pub fn tracked_insert(table: &str, key: &str, ts: &str, columns: &[&str]) -> String {
    let mut names = format!("{key}, {ts}");
    let mut values = String::from("$1, $2");
    for (i, col) in columns.iter().enumerate() {
        names.push_str(&format!(", {col}"));
        values.push_str(&format!(", ${}", i + 3));
    }
    format!(
        "INSERT INTO {table} AS stored ({names}) VALUES ({values}) \
         ON CONFLICT ({key}) DO NOTHING {}",
        returning_applied(key, ts, "true")
    )
}

/// Lock the existing row (its latest version) and say whether the write may replace it.
/// Parameters: `$1` key, `$2` client_ts.
pub fn tracked_lock(table: &str, key: &str, ts: &str) -> String {
    format!(
        "SELECT {} FROM {table} AS stored WHERE stored.{key} OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        writable(ts)
    )
}

/// The stored row, read in a fresh snapshot. In the conflict path it runs while we hold the
/// lock the upsert took, so it reads the very row version the decision was made against. Under
/// row-level security it sees only what the caller may see: an invisible row gives NULL.
fn server_cte(table: &str, key: &str, server_row: &str) -> String {
    format!(
        "WITH server AS (SELECT {server_row} AS data FROM {table} s \
          WHERE s.{key} OPERATOR(pg_catalog.=) $1)"
    )
}

/// A journal row for the write, with the server row (if any) and `reason`.
fn journal_cte(reason: &str) -> String {
    format!(
        "journal AS (INSERT INTO inventory_sync.conflicts \
           (row_id, table_name, reason, client_payload, client_ts, server_data) \
         VALUES ($1::pg_catalog.text, $4, '{reason}', $2, $3, (SELECT server.data FROM server)))"
    )
}

/// The losing write goes to the journal; the answer carries the row that won.
pub fn conflict(table: &str, key: &str, server_row: &str) -> String {
    format!(
        "{}, {} SELECT pg_catalog.jsonb_build_object('status', 'conflict', \
           'id', pg_catalog.to_jsonb($1), 'server_data', (SELECT server.data FROM server))",
        server_cte(table, key, server_row),
        journal_cte("stale")
    )
}

/// A write from a clock running ahead: journaled, not applied. Extra parameters: `$5` the
/// allowed skew in seconds, `$6` how far ahead the client was, in seconds.
pub fn reject(table: &str, key: &str, server_row: &str) -> String {
    format!(
        "{}, {} SELECT pg_catalog.jsonb_build_object(\
           'status', 'rejected', 'id', pg_catalog.to_jsonb($1), 'reason', 'clock_skew', \
           'client_ts', $3, 'server_time', pg_catalog.now(), \
           'ahead_by_seconds', $6, 'max_clock_skew_seconds', $5, \
           'message', 'client_ts is ahead of the server clock by more than \
inventory_sync.max_clock_skew; correct the device clock and send the change again')",
        server_cte(table, key, server_row),
        journal_cte("clock_skew")
    )
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn tracked_statements_bind_every_value() {
        let cols = ["name", "\"Stock\""];
        assert_eq!(
            tracked_update("public.products", "id", "updated_at", &cols),
            "UPDATE public.products AS stored SET name = $3, \"Stock\" = $4, updated_at = $2 \
              WHERE stored.id OPERATOR(pg_catalog.=) $1 AND (stored.updated_at IS NULL OR \
             stored.updated_at OPERATOR(pg_catalog.<=) $2) RETURNING pg_catalog.jsonb_build_object(\
             'status', 'applied', 'id', stored.id, 'updated_at', stored.updated_at, 'created', false)"
        );
        let insert = tracked_insert("public.products", "id", "updated_at", &cols);
        assert!(insert.starts_with(
            "INSERT INTO public.products AS stored (id, updated_at, name, \"Stock\") \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING"
        ), "{insert}");
        assert!(insert.ends_with("'created', true)"), "{insert}");
    }

    #[test]
    fn an_empty_payload_writes_only_the_timestamp() {
        assert!(tracked_update("t", "k", "ts", &[]).starts_with("UPDATE t AS stored SET ts = $2 WHERE"));
        assert!(tracked_insert("t", "k", "ts", &[]).contains("(k, ts) VALUES ($1, $2) ON CONFLICT"));
    }

    /// Every operator and function the statements use is qualified with pg_catalog.
    #[test]
    fn nothing_resolves_through_search_path() {
        let all = [
            default_upsert(),
            tracked_update("t", "k", "ts", &["a"]),
            tracked_insert("t", "k", "ts", &["a"]),
            tracked_lock("t", "k", "ts"),
            conflict(DEFAULT_TABLE, "id", DEFAULT_SERVER_ROW),
            reject("t", "k", TRACKED_SERVER_ROW),
        ];
        for sql in all {
            for op in ["||", "<=", "-", "="] {
                for (i, _) in sql.match_indices(op) {
                    let qualified = sql[..i].ends_with("pg_catalog.")
                        || (op == "=" && sql[..i].ends_with("pg_catalog.<"));
                    let assignment = op == "="
                        && (sql[i..].starts_with("= excluded.")
                            || sql[i..].starts_with("= stored.")
                            || sql[i..].starts_with("= $"));
                    assert!(qualified || assignment, "bare {op} at {i} in {sql}");
                }
            }
            for func in ["jsonb_build_object(", "to_jsonb(", "now("] {
                for (i, _) in sql.match_indices(func) {
                    assert!(sql[..i].ends_with("pg_catalog."), "unqualified {func} in {sql}");
                }
            }
        }
    }
}
