//! The statements of a Citus cluster: asking the nodes for their horizons, spreading the
//! extension's tables over the nodes (`distribute()`) and taking them back (`undistribute()`).
//! Re-exported by `sql`, like the rest.

use super::{Side, DEFAULT_TABLE};

/// Whether this database has Citus (whose nodes each answer for their horizon).
pub const HAS_CITUS: &str = "SELECT pg_catalog.to_regprocedure( \
     'pg_catalog.run_command_on_all_nodes(pg_catalog.text, pg_catalog.bool, pg_catalog.bool)') IS NOT NULL";

/// Every node's horizon, as each node answers now (`node_horizon()`: its cluster, database and the
/// oldest transaction still running there), or why it did not answer. Over new connections: the
/// slow, complete way (see `PROBE_HORIZONS`).
pub const NODE_HORIZONS: &str = "SELECT r.nodeid, r.success, r.result FROM pg_catalog.run_command_on_all_nodes( \
     'SELECT inventory_sync.node_horizon()') r";

/// The horizons of the nodes that hold the probe's rows `$1` (one per node, see `PROBE_KEYS`), one
/// statement over Citus's cached connections.
pub const PROBE_HORIZONS: &str = "SELECT inventory_sync.node_horizon() FROM inventory_sync.node_probe p \
     WHERE p.k OPERATOR(pg_catalog.=) ANY ($1)";

/// A row of the probe on each node that holds some: for each node group, the smallest key whose
/// shard it holds (each shard's smallest key is a row of the probe, `PROBE_FILL`).
pub const PROBE_KEYS: &str = "SELECT pg_catalog.array_agg(x.k) FROM (SELECT DISTINCT ON (pl.groupid) g.k \
       FROM pg_catalog.generate_series(1::pg_catalog.int8, 1000::pg_catalog.int8) AS g(k) \
       JOIN pg_catalog.pg_dist_placement pl ON pl.shardid OPERATOR(pg_catalog.=) \
         pg_catalog.get_shard_id_for_distribution_column('inventory_sync.node_probe', g.k) \
       ORDER BY pl.groupid, g.k) x";

/// A row on every shard of the probe (keys found by trying, the first of each shard).
pub const PROBE_FILL: &str = "INSERT INTO inventory_sync.node_probe (k) \
     SELECT DISTINCT ON (x.shard) x.k FROM (SELECT g.k, \
       pg_catalog.get_shard_id_for_distribution_column('inventory_sync.node_probe', g.k) AS shard \
       FROM pg_catalog.generate_series(1::pg_catalog.int8, 100000::pg_catalog.int8) AS g(k)) x \
     ORDER BY x.shard, x.k ON CONFLICT DO NOTHING";

/// Whether Citus distributes table `$1` (an OID) by hash of its column `$2` (on a server with
/// Citus).
pub const DISTRIBUTED_BY: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
     WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND p.partmethod OPERATOR(pg_catalog.=) 'h' \
       AND pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) OPERATOR(pg_catalog.=) $2)";

/// How table `$1` (an OID) numbers its columns here: "attnum:name" of each, in order.
pub const COLUMN_NUMBERS: &str = "SELECT pg_catalog.string_agg(a.attnum::pg_catalog.text OPERATOR(pg_catalog.||) ':' \
       OPERATOR(pg_catalog.||) a.attname::pg_catalog.text, ',' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
     WHERE a.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND a.attnum OPERATOR(pg_catalog.>) 0 \
       AND NOT a.attisdropped";

/// The same on every node (`$1`: the table's name), over new connections.
pub const COLUMN_NUMBERS_ON_ALL_NODES: &str =
    "SELECT r.nodeid, r.success, r.result FROM pg_catalog.run_command_on_all_nodes( \
       pg_catalog.format($f$SELECT pg_catalog.string_agg(a.attnum::pg_catalog.text OPERATOR(pg_catalog.||) ':' \
         OPERATOR(pg_catalog.||) a.attname::pg_catalog.text, ',' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
       WHERE a.attrelid OPERATOR(pg_catalog.=) %L::pg_catalog.regclass AND a.attnum OPERATOR(pg_catalog.>) 0 \
         AND NOT a.attisdropped$f$, $1)) r";

/// Set `$1` to `$2` until the transaction ends, answering what it was (to set back after): the
/// settings the Citus statements run with (`citus.enable_unsafe_triggers` to create or drop a
/// trigger of a distributed table, `citus.max_adaptive_executor_pool_size` for a pull,
/// `client_min_messages` and `search_path` for `undistribute()`).
pub const SET_LOCALLY: &str = "SELECT pg_catalog.current_setting($1), pg_catalog.set_config($1, $2, true)";

/// Whether this node is the Citus cluster's coordinator.
pub const IS_COORDINATOR: &str = "SELECT pg_catalog.citus_is_coordinator()";

/// Whether `distribute()` has spread the extension's tables over the cluster.
pub const IS_DISTRIBUTED: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
     WHERE p.logicalrelid OPERATOR(pg_catalog.=) 'inventory_sync.inventory'::pg_catalog.regclass)";

/// The extension's tables spread over a Citus cluster: first the default table by id and the
/// `uuid` and `text` sides' feeds and mutation logs by their shard key, in their type's default
/// group (`DISTRIBUTE_FIRST`; then `distribute()` distributes the tracked tables Citus does not
/// hold yet, colocated with them by key type, before the catalogs that name them are copied to
/// every node), then the journal, the mutation log and the change feed by the rows' shard keys,
/// colocated with the default table (so the side rows of an item, and of a row of a table
/// colocated with the default table or with a side's tables, are on the row's node; see `sql`),
/// the eras, the purge horizon and the catalogs on every node (the catalogs name tables as
/// `regclass`, which Citus sends by name, so each node reads its own OIDs).
pub const DISTRIBUTE_FIRST: [&str; 5] = [
    "SELECT pg_catalog.create_distributed_table('inventory_sync.inventory', 'id')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.changes_uuid', 'shard_key', colocate_with => 'default')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.mutations_uuid', 'shard_key', \
       colocate_with => 'inventory_sync.changes_uuid')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.changes_text', 'shard_key', colocate_with => 'default')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.mutations_text', 'shard_key', \
       colocate_with => 'inventory_sync.changes_text')",
];

/// The rest of the extension's tables, after the tracked tables (see `DISTRIBUTE_FIRST`).
pub const DISTRIBUTE: [&str; 8] = [
    "SELECT pg_catalog.create_distributed_table('inventory_sync.conflicts', 'shard_key', \
       colocate_with => 'inventory_sync.inventory')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.mutations', 'shard_key', \
       colocate_with => 'inventory_sync.inventory')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.changes', 'shard_key', \
       colocate_with => 'inventory_sync.inventory')",
    "SELECT pg_catalog.create_reference_table('inventory_sync.eras')",
    "SELECT pg_catalog.create_reference_table('inventory_sync.purge_horizon')",
    "SELECT pg_catalog.create_reference_table('inventory_sync.tracked')",
    "SELECT pg_catalog.create_reference_table('inventory_sync.field_policies')",
    "SELECT pg_catalog.create_distributed_table('inventory_sync.node_probe', 'k', \
       colocate_with => 'inventory_sync.inventory')",
];

/// The calls of one row run on the node that holds it (Citus delegates a call by its key): the
/// default table's, the tracked tables' calls with a bigint key, delegated as if colocated with
/// the default table, and those with a `uuid` key, as if colocated with the `uuid` side tables
/// (as a tracked table is: `distribute()` and `track()` see to it), so the row and its side rows
/// are all on that node. Not the text form: it is also what a key sent untyped resolves to, and
/// delegated by a `bigint` or `uuid` key's text it would run on the node of that text, reaching
/// the row from there over new connections (measured: a fifth of the calls a second of the same
/// call run on the coordinator); a text-keyed row's call runs on the coordinator, its statements
/// on the one node that holds the row and its side rows. And `sync_push_on`, a push of the
/// changes of one node (`push_groups`), by its node key, run whole on that node. Each: the
/// function, the argument it is delegated by, the table it is colocated with.
pub const DELEGATED: [(&str, &str, &str); 7] = [
    ("inventory_sync.sync_upsert(bigint, jsonb, timestamptz, text, text, jsonb, text)", "$1", DEFAULT_TABLE),
    ("inventory_sync.sync_delete(bigint, timestamptz, text, text, text)", "$1", DEFAULT_TABLE),
    (
        "inventory_sync.sync_upsert_in(regclass, bigint, jsonb, timestamptz, text, text, jsonb, text)",
        "$2",
        DEFAULT_TABLE,
    ),
    ("inventory_sync.sync_delete_in(regclass, bigint, timestamptz, text, text, text)", "$2", DEFAULT_TABLE),
    ("inventory_sync.sync_upsert_in(regclass, uuid, jsonb, timestamptz, text, text, jsonb, text)", "$2", UUID_CHANGES),
    ("inventory_sync.sync_delete_in(regclass, uuid, timestamptz, text, text, text)", "$2", UUID_CHANGES),
    ("inventory_sync.sync_push_on(bigint, jsonb, boolean)", "$1", DEFAULT_TABLE),
];

const UUID_CHANGES: &str = Side::Uuid.changes();

/// The statements that delegate the calls of `DELEGATED`.
pub fn delegate() -> Vec<String> {
    DELEGATED
        .iter()
        .map(|(function, by, with)| {
            format!("SELECT pg_catalog.create_distributed_function('{function}', '{by}', colocate_with => '{with}')")
        })
        .collect()
}

/// The node group that holds the row of table `$1` (an OID) whose key is `$2` (typed as the key):
/// NULL unless Citus spreads the table by hash (a reference table is on every node).
pub const ROW_GROUP: &str = "SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
         WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass AND p.partmethod OPERATOR(pg_catalog.=) 'h') \
       THEN (SELECT pl.groupid FROM pg_catalog.pg_dist_placement pl WHERE pl.shardid OPERATOR(pg_catalog.=) \
               pg_catalog.get_shard_id_for_distribution_column($1::pg_catalog.regclass, $2) LIMIT 1) END";

/// The node groups that hold shards of the default table (for each, `sync_push_on` needs a key
/// of the default table there, found with `ROW_GROUP`).
pub const DEFAULT_TABLE_GROUPS: &str = "SELECT DISTINCT pl.groupid FROM pg_catalog.pg_dist_placement pl \
       JOIN pg_catalog.pg_dist_shard s ON s.shardid OPERATOR(pg_catalog.=) pl.shardid \
      WHERE s.logicalrelid OPERATOR(pg_catalog.=) 'inventory_sync.inventory'::pg_catalog.regclass";

/// The tracked tables Citus does not hold yet: OID, key column, its number and its type.
pub const TRACKED_UNDISTRIBUTED: &str =
    "SELECT t.tbl::pg_catalog.oid, a.attname::pg_catalog.text, a.attnum, a.atttypid \
     FROM inventory_sync.tracked t JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.tbl \
      AND a.attnum OPERATOR(pg_catalog.=) t.key_attnum \
     WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) t.tbl) \
     ORDER BY t.table_id";

/// The tracked tables' catalog rows, set aside while `distribute()` makes the catalog a reference
/// table (see `CATALOGS_EMPTY`): OID, key and timestamp column numbers, when and by whom, table id.
pub const TRACKED_ROWS: &str = "SELECT t.tbl::pg_catalog.oid, t.key_attnum, t.ts_attnum, t.tracked_at, \
       t.tracked_by::pg_catalog.text, t.table_id FROM inventory_sync.tracked t ORDER BY t.table_id";

/// A tracked table's catalog row written back (`$1` the table, `$2`… as `TRACKED_ROWS`).
pub const TRACKED_PUT: &str =
    "INSERT INTO inventory_sync.tracked (tbl, key_attnum, ts_attnum, tracked_at, tracked_by, table_id) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// The merge policies, set aside the same way: table OID, field, policy (written back by `SET_POLICY`).
pub const POLICY_ROWS: &str = "SELECT p.tbl::pg_catalog.oid, p.field, p.policy FROM inventory_sync.field_policies p";

/// The catalogs emptied before Citus makes them reference tables: Citus copies a table's rows to
/// the nodes in binary, where a `regclass` is the coordinator's OID, which on a worker names
/// another table or none; the rows are written back through Citus, whose INSERT names the table.
pub const CATALOGS_EMPTY: [&str; 2] =
    ["DELETE FROM inventory_sync.tracked", "DELETE FROM inventory_sync.field_policies"];

/// Whether table `$1` (an OID) has a column dropped before one of its columns (see
/// `SyncError::DroppedColumns`).
pub const HAS_DROPPED_COLUMN: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute d \
       WHERE d.attrelid OPERATOR(pg_catalog.=) $1 AND d.attisdropped \
         AND EXISTS (SELECT FROM pg_catalog.pg_attribute l WHERE l.attrelid OPERATOR(pg_catalog.=) $1 \
                       AND NOT l.attisdropped AND l.attnum OPERATOR(pg_catalog.>) d.attnum))";

/// How Citus holds table `$1` (an OID) whose key is column number `$2`: whether it spreads it by
/// hash, and if so whether by that column in the colocation group of table `$3` (no row: Citus
/// does not hold it).
pub const SPREAD_AS: &str = "SELECT p.partmethod OPERATOR(pg_catalog.=) 'h', \
       pg_catalog.column_to_column_name(p.logicalrelid, p.partkey) OPERATOR(pg_catalog.=) \
         (SELECT a.attname::pg_catalog.text FROM pg_catalog.pg_attribute a \
           WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) $2) \
       AND p.colocationid OPERATOR(pg_catalog.=) (SELECT q.colocationid FROM pg_catalog.pg_dist_partition q \
           WHERE q.logicalrelid OPERATOR(pg_catalog.=) $3::pg_catalog.regclass) \
     FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass";

/// Whether column number `$2` of table `$1` (an OID) has the database's default collation.
pub const DEFAULT_COLLATION: &str = "SELECT a.attcollation OPERATOR(pg_catalog.=) \
       'pg_catalog.\"default\"'::pg_catalog.regcollation::pg_catalog.oid \
     FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) $2";

/// Distribute table `$1` (an OID) by its column `$2`, colocated with `$3` (a table).
pub const DISTRIBUTE_TABLE: &str =
    "SELECT pg_catalog.create_distributed_table($1::pg_catalog.regclass, $2, colocate_with => $3)";

/// The tables whose rows are the feed: the default table and each side's change feed.
const FEED: [&str; 4] = [DEFAULT_TABLE, Side::Bigint.changes(), UUID_CHANGES, Side::Text.changes()];

/// The feed's rows take their positions on the node that stores them (`stamp_position`); Citus
/// creates a trigger on a distributed table, and on each of its shards, only while
/// `citus.enable_unsafe_triggers` is on, as it drops one.
pub fn stamp_positions() -> Vec<String> {
    FEED.iter()
        .map(|table| {
            format!(
                "CREATE OR REPLACE TRIGGER stamp_position BEFORE INSERT OR UPDATE OF position ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION inventory_sync.stamp_position()"
            )
        })
        .collect()
}

/// `undistribute()`: the extension's tables Citus holds (distributed or replicated), by name.
pub const OWN_DISTRIBUTED: &str = "SELECT c.oid, c.relname::pg_catalog.text FROM pg_catalog.pg_dist_partition p \
       JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.logicalrelid \
     WHERE c.relnamespace OPERATOR(pg_catalog.=) 'inventory_sync'::pg_catalog.regnamespace ORDER BY c.relname";

/// Table `$1` and what of the extension goes with it (the sequences of its columns, the views on
/// it): each one's OID, name, kind (as `ALTER EXTENSION` names it) and, when pg_dump saves its
/// rows, its filter (else NULL).
pub const MEMBERS_OF_TABLE: &str = "SELECT r.oid, r.oid::pg_catalog.regclass::pg_catalog.text, \
       CASE r.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, cfg.cond \
     FROM pg_catalog.pg_class r \
     LEFT JOIN (SELECT x.oid, x.cond FROM pg_catalog.pg_extension e, \
                  ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS x(oid, cond) \
                WHERE e.extname OPERATOR(pg_catalog.=) 'inventory_sync') cfg ON cfg.oid OPERATOR(pg_catalog.=) r.oid \
     WHERE r.oid OPERATOR(pg_catalog.=) $1 OR (EXISTS ( \
         SELECT FROM pg_catalog.pg_depend m WHERE m.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND m.objid OPERATOR(pg_catalog.=) r.oid AND m.deptype OPERATOR(pg_catalog.=) 'e') \
       AND ((r.relkind OPERATOR(pg_catalog.=) 'S' AND EXISTS ( \
         SELECT FROM pg_catalog.pg_depend d WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass \
           AND d.objid OPERATOR(pg_catalog.=) r.oid AND d.refobjid OPERATOR(pg_catalog.=) $1 \
           AND d.deptype OPERATOR(pg_catalog.=) 'a')) \
       OR (r.relkind OPERATOR(pg_catalog.=) 'v' AND EXISTS ( \
         SELECT FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite w ON w.oid OPERATOR(pg_catalog.=) d.objid \
           WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
           AND w.ev_class OPERATOR(pg_catalog.=) r.oid AND d.refobjid OPERATOR(pg_catalog.=) $1)))) \
     ORDER BY r.relkind DESC, r.relname";

/// The comments on relation `$1` and its columns, as the statements that set them again.
pub const COMMENTS_OF: &str = "SELECT CASE WHEN d.objsubid OPERATOR(pg_catalog.=) 0 \
         THEN pg_catalog.format('COMMENT ON %s %s IS %L', \
           CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.oid::pg_catalog.regclass, d.description) \
         ELSE pg_catalog.format('COMMENT ON COLUMN %s.%I IS %L', r.oid::pg_catalog.regclass, a.attname, d.description) END \
     FROM pg_catalog.pg_description d \
     JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) d.objoid \
     LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.objoid AND a.attnum OPERATOR(pg_catalog.=) d.objsubid \
     WHERE d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objoid OPERATOR(pg_catalog.=) $1";

/// The row-level security policies of table `$1`, as the statements that drop and create each one
/// again (Citus's copy of a table makes every policy permissive).
pub const POLICIES_OF: &str = "SELECT pg_catalog.format('DROP POLICY IF EXISTS %I ON %s', p.polname, r.oid::pg_catalog.regclass), \
       pg_catalog.format('CREATE POLICY %I ON %s AS %s FOR %s TO %s', p.polname, r.oid::pg_catalog.regclass, \
         CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END, \
         CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END, \
         (SELECT pg_catalog.string_agg(CASE WHEN g.role OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' \
                   ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.role)) END, ', ') \
            FROM pg_catalog.unnest(p.polroles) AS g(role))) \
       OPERATOR(pg_catalog.||) COALESCE(' USING (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polqual, r.oid) \
         OPERATOR(pg_catalog.||) ')', '') \
       OPERATOR(pg_catalog.||) COALESCE(' WITH CHECK (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polwithcheck, r.oid) \
         OPERATOR(pg_catalog.||) ')', '') \
     FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) p.polrelid \
     WHERE r.oid OPERATOR(pg_catalog.=) $1 ORDER BY p.polname";

/// The privileges granted on relation `$1`, as the statements that grant them again (Citus's copy
/// of a view has none).
pub const GRANTS_OF: &str =
    "SELECT pg_catalog.format('GRANT %s ON %s TO %s%s', a.privilege_type, r.oid::pg_catalog.regclass, \
         CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' \
           ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, \
         CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
     FROM pg_catalog.pg_class r, pg_catalog.aclexplode(r.relacl) a WHERE r.oid OPERATOR(pg_catalog.=) $1";

/// Citus copies table `$1` (an OID) back to this node, whole, and drops its shards.
pub const UNDISTRIBUTE_TABLE: &str = "SELECT pg_catalog.undistribute_table($1::pg_catalog.regclass)";

/// What `undistribute()` undoes before it takes the tables back: the delegation of the calls
/// (`DELEGATED`) and the triggers that stamp positions on the nodes.
pub fn undelegate() -> Vec<String> {
    let calls = DELEGATED.iter().map(|(function, ..)| {
        format!(
            "SELECT pg_catalog.citus_unmark_object_distributed('pg_catalog.pg_proc'::pg_catalog.regclass, \
             '{function}'::pg_catalog.regprocedure, 0, false)"
        )
    });
    calls.chain(FEED.iter().map(|table| format!("DROP TRIGGER IF EXISTS stamp_position ON {table}"))).collect()
}

/// The `sql_drop` event trigger rests while `undistribute()` runs (Citus drops the old copies of
/// the extension's own tables, whose sync state is not to be forgotten), then works again.
pub const FORGETTING: [&str; 2] = [
    "ALTER EVENT TRIGGER inventory_sync_forget_dropped_tables DISABLE",
    "ALTER EVENT TRIGGER inventory_sync_forget_dropped_tables ENABLE",
];

/// On a single server the probe is empty.
pub const PROBE_EMPTY: &str = "DELETE FROM inventory_sync.node_probe";

/// Each node's journal ids from a range of its own (its Citus group id × 2^48 on): a delegated call
/// journals on the node it runs on, from that node's sequence.
pub const JOURNAL_ID_RANGES: &str = "SELECT r.nodeid, r.success, r.result FROM pg_catalog.run_command_on_all_nodes( \
     $$SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('inventory_sync.conflicts', 'conflict_id'), \
         GREATEST((SELECT g.groupid FROM pg_catalog.pg_dist_local_group g)::pg_catalog.int8 OPERATOR(pg_catalog.<<) 48, \
                  pg_catalog.pg_sequence_last_value( \
                    pg_catalog.pg_get_serial_sequence('inventory_sync.conflicts', 'conflict_id')::pg_catalog.regclass), \
                  1))$$) r";

/// Whether Citus keeps table `$1` (an OID) on every node or spreads it.
pub const IS_REPLICATED: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p \
     WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass)";
