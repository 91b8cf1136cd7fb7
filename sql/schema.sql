-- The extension's tables. The schema inventory_sync itself comes from the control file.
-- Keys include the row id, and the side tables' keys the row's shard key, so the tables can be
-- distributed by it (Citus) with the rows they describe, and a write touches only rows of its own
-- id; sequences are the tables' own columns', no standalone sequence.

-- Value checks are domains rather than table CHECK constraints: PostgreSQL reads a table's CHECK
-- constraints from their stored text and plans them again for every statement that writes the
-- table (a tenth of a sync_upsert call), while a domain's check is planned once per backend.
CREATE DOMAIN inventory_sync.item_fields AS jsonb
    CHECK (pg_catalog.jsonb_typeof(VALUE) OPERATOR(pg_catalog.=) 'object');
CREATE DOMAIN inventory_sync.write_op AS text
    CHECK (VALUE OPERATOR(pg_catalog.=) ANY ('{upsert,delete}'::text[]));
CREATE DOMAIN inventory_sync.conflict_reason AS text
    CHECK (VALUE OPERATOR(pg_catalog.=) ANY ('{stale,clock_skew,constraint,trigger}'::text[]));
COMMENT ON DOMAIN inventory_sync.item_fields IS 'An item''s fields: a JSON object.';
COMMENT ON DOMAIN inventory_sync.write_op IS 'upsert or delete.';
COMMENT ON DOMAIN inventory_sync.conflict_reason IS 'Why a write was not applied: stale, clock_skew, or refused by the table''s constraint or trigger.';

CREATE TABLE inventory_sync.inventory (
    id         bigint      PRIMARY KEY,
    data       inventory_sync.item_fields NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL,
    deleted    boolean     NOT NULL DEFAULT false,
    updated_by text,
    field_clocks jsonb     NOT NULL DEFAULT '{}'::jsonb,
    position   bigint      NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now(),
    version    bigint      NOT NULL DEFAULT 0
);
-- The pull feed walks changes in (position, row) order, as a range of this index.
CREATE INDEX inventory_position_idx ON inventory_sync.inventory (position, id);

CREATE TABLE inventory_sync.conflicts (
    row_id         text        NOT NULL,
    conflict_id    bigserial,
    table_name     text        NOT NULL,
    reason         inventory_sync.conflict_reason NOT NULL,
    op             inventory_sync.write_op NOT NULL DEFAULT 'upsert',
    client_payload jsonb       NOT NULL,
    client_ts      timestamptz NOT NULL,
    client_id      text,
    mutation_id    text,
    server_data    jsonb,
    detected_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user        name        NOT NULL DEFAULT current_user,
    shard_key      bigint      NOT NULL,
    PRIMARY KEY (row_id, conflict_id, shard_key)
);

CREATE INDEX conflicts_detected_at_idx ON inventory_sync.conflicts (detected_at);
-- Every writer may add journal rows in its own name; reading the journal takes a GRANT.
ALTER TABLE inventory_sync.conflicts ENABLE ROW LEVEL SECURITY;
CREATE POLICY journal_as_oneself ON inventory_sync.conflicts FOR INSERT
    WITH CHECK (db_user OPERATOR(pg_catalog.=) CURRENT_USER);
CREATE POLICY journal_readable ON inventory_sync.conflicts FOR SELECT USING (true);
GRANT INSERT ON inventory_sync.conflicts TO PUBLIC;
-- A sequence default, not an identity column: Citus cannot take a table with an identity column
-- back from the workers (inventory_sync.undistribute()).
GRANT USAGE ON SEQUENCE inventory_sync.conflicts_conflict_id_seq TO PUBLIC;

COMMENT ON TABLE inventory_sync.inventory IS
    'The default synced table: one item per id, its fields in data, updated_at the client_ts of the write that produced the current state.';
COMMENT ON COLUMN inventory_sync.inventory.data IS
    'The item''s fields. Writes merge into it key by key; the reserved keys id and updated_at never land here.';
COMMENT ON COLUMN inventory_sync.inventory.updated_at IS
    'client_ts of the write that produced the current state; the last-write-wins clock.';
COMMENT ON COLUMN inventory_sync.inventory.deleted IS
    'A tombstone: the item was deleted at updated_at. Kept so older writes still lose; removed by purge_tombstones().';
COMMENT ON COLUMN inventory_sync.inventory.updated_by IS
    'client_id of the write that produced the current state, if it sent one: orders writes with equal timestamps.';
COMMENT ON COLUMN inventory_sync.inventory.field_clocks IS
    'Per-field clocks ({"field": {"ts": microseconds, "by": client_id}}) of fields set by merging writes; a field without one has the row''s clock.';
COMMENT ON COLUMN inventory_sync.inventory.position IS
    'The feed position of the row''s last change (see inventory_sync.eras).';
COMMENT ON COLUMN inventory_sync.inventory.changed_at IS 'Server time of the last change.';
COMMENT ON COLUMN inventory_sync.inventory.version IS
    'The row''s version, given by the server at each applied write: its clock in microseconds, or one more than the version before if that is not below it (0: never written by a sync function). Clients see it as 16 hex digits and send it back as base_version.';
COMMENT ON TABLE inventory_sync.conflicts IS
    'The journal: every write that was not applied, with what the client sent and what the server held.';
COMMENT ON COLUMN inventory_sync.conflicts.row_id IS
    'The key of the row the write was for, as text (the same column for bigint, integer, uuid and text keys).';
COMMENT ON COLUMN inventory_sync.conflicts.table_name IS 'The table the write was for, schema-qualified.';
COMMENT ON COLUMN inventory_sync.conflicts.reason IS
    'stale: the stored row was newer; clock_skew: client_ts ran ahead of the server clock by more than inventory_sync.max_clock_skew.';
COMMENT ON COLUMN inventory_sync.conflicts.op IS 'upsert or delete.';
COMMENT ON COLUMN inventory_sync.conflicts.client_payload IS 'The payload exactly as the client sent it ({} for a delete).';
COMMENT ON COLUMN inventory_sync.conflicts.client_id IS 'The device that sent the write, if it said.';
COMMENT ON COLUMN inventory_sync.conflicts.mutation_id IS 'The write''s mutation id, if it had one.';
COMMENT ON COLUMN inventory_sync.conflicts.client_ts IS 'The client''s timestamp for the write.';
COMMENT ON COLUMN inventory_sync.conflicts.server_data IS
    'The row that won, as a client stores it (data plus id and updated_at); null when a rejected write had no row.';
COMMENT ON COLUMN inventory_sync.conflicts.detected_at IS 'When the conflict was decided (clock_timestamp()).';
COMMENT ON COLUMN inventory_sync.conflicts.db_user IS 'The database user that sent the write.';
COMMENT ON COLUMN inventory_sync.conflicts.shard_key IS
    'The row''s shard key, which a Citus cluster distributes the journal by: the key itself for an integer key, else hashtextextended(row_id, 0); for a uuid or text key on a Citus cluster, a key of the default table on the row''s node.';

-- Whether the current user may manage the sync of table tbl (track it, set its policies): a
-- member of the role that owns it. A function rather than a subquery in the policies below:
-- Citus replicates a table to every node (inventory_sync.distribute()) only if its policies have
-- no subquery.
CREATE FUNCTION inventory_sync.manages(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1), 'USAGE')
$$;
COMMENT ON FUNCTION inventory_sync.manages(regclass) IS
    'Whether the current user may manage the sync of the table: a member of its owner role.';

-- Tracked tables: the application's own tables under sync. Key and timestamp columns are kept by
-- number, so renaming them does not break tracking. Readable by everyone (like pg_class); rows can
-- be added or removed only for tables the current user owns (the policy below), which is also
-- what track() and untrack() check, with a clearer error.
CREATE TABLE inventory_sync.tracked (
    tbl        regclass    PRIMARY KEY,
    key_attnum smallint    NOT NULL,
    ts_attnum  smallint    NOT NULL,
    tracked_at timestamptz NOT NULL DEFAULT now(),
    tracked_by name        NOT NULL DEFAULT current_user,
    table_id   serial      UNIQUE
);
ALTER TABLE inventory_sync.tracked ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON inventory_sync.tracked
    USING (true)
    WITH CHECK (inventory_sync.manages(tbl));
-- An UPDATE must own the table named before (USING) as well as after (WITH CHECK): otherwise
-- anyone could point another owner's tracking row at a table of their own, untracking it.
CREATE POLICY owner_updates ON inventory_sync.tracked AS RESTRICTIVE FOR UPDATE
    USING (inventory_sync.manages(tbl));
CREATE POLICY owner_deletes ON inventory_sync.tracked AS RESTRICTIVE FOR DELETE
    USING (inventory_sync.manages(tbl));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.tracked TO PUBLIC;
GRANT USAGE ON SEQUENCE inventory_sync.tracked_table_id_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.tracked', '');

COMMENT ON TABLE inventory_sync.tracked IS
    'Tables under sync (see inventory_sync.tracked_tables for names); maintained by track() and untrack().';
COMMENT ON COLUMN inventory_sync.tracked.table_id IS
    'The table''s identity in the feed, the mutation log and cursors (0 is the default table): unlike its OID, the same after a restore.';

CREATE VIEW inventory_sync.tracked_tables AS
SELECT t.tbl                                    AS table_name,
       k.attname                                AS key_column,
       pg_catalog.format_type(k.atttypid, NULL) AS key_type,
       ts.attname                               AS ts_column,
       t.tracked_at,
       t.tracked_by,
       t.table_id
  FROM inventory_sync.tracked t
  JOIN pg_catalog.pg_attribute k  ON k.attrelid = t.tbl AND k.attnum = t.key_attnum
  JOIN pg_catalog.pg_attribute ts ON ts.attrelid = t.tbl AND ts.attnum = t.ts_attnum;
GRANT SELECT ON inventory_sync.tracked_tables TO PUBLIC;

-- A table by its table_id: 0 is the default table; NULL if no tracked table has the id.
CREATE FUNCTION inventory_sync.table_of(table_id integer) RETURNS regclass
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN $1 OPERATOR(pg_catalog.=) 0 THEN 'inventory_sync.inventory'::pg_catalog.regclass
                ELSE (SELECT t.tbl FROM inventory_sync.tracked t WHERE t.table_id OPERATOR(pg_catalog.=) $1) END
$$;
COMMENT ON FUNCTION inventory_sync.table_of(integer) IS
    'The table a table_id names (0: the default table), or NULL.';

-- Feed positions. A change's position is era * 2^48 + the id of the transaction that wrote it: an
-- era is the stretch of history one cluster and database write. A restore into another cluster
-- (whose transaction ids may be far lower) or another database starts the next era with its
-- first write, above every position stored before, so positions only grow; see
-- docs/DEVELOPMENT.md. Concurrent first writes may each record the same era (same number, same
-- cluster and database): no writer waits for another to start one.
CREATE TABLE inventory_sync.eras (
    era               integer     NOT NULL CHECK (era OPERATOR(pg_catalog.>) 0 AND era OPERATOR(pg_catalog.<) 32768),
    cohort            integer     NOT NULL,
    system_identifier bigint      NOT NULL,
    database_oid      oid         NOT NULL,
    previous_end      bigint      NOT NULL,
    started_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX eras_era_idx ON inventory_sync.eras (era);
GRANT SELECT ON inventory_sync.eras TO PUBLIC;
COMMENT ON TABLE inventory_sync.eras IS
    'Stretches of feed history, one per cluster and database that wrote: written only by the sync functions.';
COMMENT ON COLUMN inventory_sync.eras.era IS
    'The era''s number: its positions are era * 2^48 + transaction id.';
COMMENT ON COLUMN inventory_sync.eras.cohort IS
    'The eras started together: one era alone on a single server; one per node of a Citus cluster, given by inventory_sync.distribute(). Only the latest cohort''s eras are written in.';
COMMENT ON COLUMN inventory_sync.eras.system_identifier IS
    'The cluster that writes in this era (pg_control_system().system_identifier): another cluster starts a new era.';
COMMENT ON COLUMN inventory_sync.eras.database_oid IS
    'The database that writes in this era, as a fingerprint: a restored copy is another database and starts a new era.';
COMMENT ON COLUMN inventory_sync.eras.previous_end IS
    'The highest position stored when the era began: a cursor of the era before that lies beyond it is from a history this database does not have.';
COMMENT ON VIEW inventory_sync.tracked_tables IS
    'The tracked tables with their key and write-timestamp columns.';

-- The change feed and tombstones of tracked tables: one row per (table, key), the latest change.
-- A delete removes the application's row and leaves its tombstone here.
CREATE TABLE inventory_sync.changes (
    table_id   integer     NOT NULL,
    row_id     text        COLLATE "C" NOT NULL,
    id         jsonb       NOT NULL,
    op         inventory_sync.write_op NOT NULL,
    ts         timestamptz NOT NULL,
    client_id  text,
    field_clocks jsonb     NOT NULL DEFAULT '{}'::jsonb,
    position   bigint      NOT NULL,
    changed_at timestamptz NOT NULL,
    shard_key  bigint      NOT NULL,
    version    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (row_id, table_id, shard_key)
);
CREATE INDEX changes_position_idx ON inventory_sync.changes (position, table_id, row_id);
-- The feed is written only by the sync functions, as the table's owner, after the caller's own
-- statement on the tracked table passed its rights and row-level security: nobody can record (or
-- forge) a change of a row they may not write. A user reads the entries of the tables they may
-- read (pull also checks SELECT on each table).
ALTER TABLE inventory_sync.changes ENABLE ROW LEVEL SECURITY;
CREATE POLICY changes_readable ON inventory_sync.changes FOR SELECT
    USING (pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'SELECT'));
GRANT SELECT ON inventory_sync.changes TO PUBLIC;
COMMENT ON TABLE inventory_sync.changes IS
    'The latest change of each row of each tracked table (op delete: a tombstone), in the order the pull feed walks.';
COMMENT ON COLUMN inventory_sync.changes.version IS
    'The row''s version (see inventory_sync.inventory.version): its own or its tombstone''s.';
COMMENT ON COLUMN inventory_sync.changes.shard_key IS
    'The row''s key (a bigint or integer key), which a Citus cluster distributes the feed by, with the default table.';

-- Mutations already applied, so a retried write is answered, not applied again. Keyed by the row
-- first: a retry always names the same row, and the table can be distributed with the rows.
CREATE TABLE inventory_sync.mutations (
    row_id      text        COLLATE "C" NOT NULL,
    table_id    integer     NOT NULL,
    client_id   text        NOT NULL,
    mutation_id text        NOT NULL,
    answer      jsonb,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    db_user     name        NOT NULL DEFAULT current_user,
    shard_key   bigint      NOT NULL,
    PRIMARY KEY (row_id, table_id, client_id, mutation_id, shard_key)
);
CREATE INDEX mutations_applied_at_idx ON inventory_sync.mutations (applied_at);
-- A database user sees and replays only the mutations it applied itself.
ALTER TABLE inventory_sync.mutations ENABLE ROW LEVEL SECURITY;
-- A mutation id is claimed only by a user who may write the table: otherwise anyone could
-- claim a device's next ids and have its real writes refused.
CREATE POLICY mutations_of_oneself ON inventory_sync.mutations
    USING (db_user OPERATOR(pg_catalog.=) CURRENT_USER)
    WITH CHECK (db_user OPERATOR(pg_catalog.=) CURRENT_USER
                AND pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'INSERT, UPDATE, DELETE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.mutations TO PUBLIC;
COMMENT ON TABLE inventory_sync.mutations IS
    'Answers of writes that carried client_id and mutation_id, kept until purge_mutations() removes them.';
COMMENT ON COLUMN inventory_sync.mutations.shard_key IS
    'The row''s key (a bigint or integer key), which a Citus cluster distributes the mutation log by, with the default table.';

-- The feed and the mutation log of the tracked tables with a uuid key: the same columns, with the
-- key itself as the shard key. A Citus cluster colocates only tables distributed by one type, so
-- these are distributed with the uuid tables, and a uuid row's feed record and mutation ids lie
-- on the node that holds the row, as a bigint row's do with the tables above.
CREATE TABLE inventory_sync.changes_uuid (
    table_id   integer     NOT NULL,
    row_id     text        COLLATE "C" NOT NULL,
    id         jsonb       NOT NULL,
    op         inventory_sync.write_op NOT NULL,
    ts         timestamptz NOT NULL,
    client_id  text,
    field_clocks jsonb     NOT NULL DEFAULT '{}'::jsonb,
    position   bigint      NOT NULL,
    changed_at timestamptz NOT NULL,
    shard_key  uuid        NOT NULL,
    version    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (row_id, table_id, shard_key)
);
CREATE INDEX changes_uuid_position_idx ON inventory_sync.changes_uuid (position, table_id, row_id);
ALTER TABLE inventory_sync.changes_uuid ENABLE ROW LEVEL SECURITY;
CREATE POLICY changes_uuid_readable ON inventory_sync.changes_uuid FOR SELECT
    USING (pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'SELECT'));
GRANT SELECT ON inventory_sync.changes_uuid TO PUBLIC;
COMMENT ON TABLE inventory_sync.changes_uuid IS
    'inventory_sync.changes for the tracked tables with a uuid key.';
COMMENT ON COLUMN inventory_sync.changes_uuid.version IS
    'The row''s version (see inventory_sync.inventory.version): its own or its tombstone''s.';
COMMENT ON COLUMN inventory_sync.changes_uuid.shard_key IS
    'The row''s key, which a Citus cluster distributes this part of the feed by, with the uuid tables.';

CREATE TABLE inventory_sync.mutations_uuid (
    row_id      text        COLLATE "C" NOT NULL,
    table_id    integer     NOT NULL,
    client_id   text        NOT NULL,
    mutation_id text        NOT NULL,
    answer      jsonb,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    db_user     name        NOT NULL DEFAULT current_user,
    shard_key   uuid        NOT NULL,
    PRIMARY KEY (row_id, table_id, client_id, mutation_id, shard_key)
);
CREATE INDEX mutations_uuid_applied_at_idx ON inventory_sync.mutations_uuid (applied_at);
ALTER TABLE inventory_sync.mutations_uuid ENABLE ROW LEVEL SECURITY;
CREATE POLICY mutations_uuid_of_oneself ON inventory_sync.mutations_uuid
    USING (db_user OPERATOR(pg_catalog.=) CURRENT_USER)
    WITH CHECK (db_user OPERATOR(pg_catalog.=) CURRENT_USER
                AND pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'INSERT, UPDATE, DELETE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.mutations_uuid TO PUBLIC;
COMMENT ON TABLE inventory_sync.mutations_uuid IS
    'inventory_sync.mutations for the tracked tables with a uuid key.';
COMMENT ON COLUMN inventory_sync.mutations_uuid.shard_key IS
    'The row''s key, which a Citus cluster distributes this part of the mutation log by, with the uuid tables.';

-- The same for the tracked tables with a text key, whose shard key is the key itself in the
-- database's default collation (a Citus cluster colocates text columns of one collation only).
CREATE TABLE inventory_sync.changes_text (
    table_id   integer     NOT NULL,
    row_id     text        COLLATE "C" NOT NULL,
    id         jsonb       NOT NULL,
    op         inventory_sync.write_op NOT NULL,
    ts         timestamptz NOT NULL,
    client_id  text,
    field_clocks jsonb     NOT NULL DEFAULT '{}'::jsonb,
    position   bigint      NOT NULL,
    changed_at timestamptz NOT NULL,
    shard_key  text        NOT NULL,
    version    bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (row_id, table_id, shard_key)
);
CREATE INDEX changes_text_position_idx ON inventory_sync.changes_text (position, table_id, row_id);
ALTER TABLE inventory_sync.changes_text ENABLE ROW LEVEL SECURITY;
CREATE POLICY changes_text_readable ON inventory_sync.changes_text FOR SELECT
    USING (pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'SELECT'));
GRANT SELECT ON inventory_sync.changes_text TO PUBLIC;
COMMENT ON TABLE inventory_sync.changes_text IS
    'inventory_sync.changes for the tracked tables with a text key.';
COMMENT ON COLUMN inventory_sync.changes_text.version IS
    'The row''s version (see inventory_sync.inventory.version): its own or its tombstone''s.';
COMMENT ON COLUMN inventory_sync.changes_text.shard_key IS
    'The row''s key, which a Citus cluster distributes this part of the feed by, with the text tables.';

CREATE TABLE inventory_sync.mutations_text (
    row_id      text        COLLATE "C" NOT NULL,
    table_id    integer     NOT NULL,
    client_id   text        NOT NULL,
    mutation_id text        NOT NULL,
    answer      jsonb,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    db_user     name        NOT NULL DEFAULT current_user,
    shard_key   text        NOT NULL,
    PRIMARY KEY (row_id, table_id, client_id, mutation_id, shard_key)
);
CREATE INDEX mutations_text_applied_at_idx ON inventory_sync.mutations_text (applied_at);
ALTER TABLE inventory_sync.mutations_text ENABLE ROW LEVEL SECURITY;
CREATE POLICY mutations_text_of_oneself ON inventory_sync.mutations_text
    USING (db_user OPERATOR(pg_catalog.=) CURRENT_USER)
    WITH CHECK (db_user OPERATOR(pg_catalog.=) CURRENT_USER
                AND pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'INSERT, UPDATE, DELETE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.mutations_text TO PUBLIC;
COMMENT ON TABLE inventory_sync.mutations_text IS
    'inventory_sync.mutations for the tracked tables with a text key.';
COMMENT ON COLUMN inventory_sync.mutations_text.shard_key IS
    'The row''s key, which a Citus cluster distributes this part of the mutation log by, with the text tables.';

-- The feed position of the newest tombstone a purge removed, per era (on a Citus cluster each
-- node writes in an era of its own): a pull cursor before it may have missed it.
CREATE TABLE inventory_sync.purge_horizon (
    era        integer     PRIMARY KEY,
    position   bigint      NOT NULL,
    table_id   integer     NOT NULL,
    row_id     text        COLLATE "C" NOT NULL,
    purged_at  timestamptz NOT NULL
);
GRANT SELECT ON inventory_sync.purge_horizon TO PUBLIC;

-- On a Citus cluster, one row on every shard of the default table's group (distribute() fills it),
-- so that one statement over it reaches every node that holds shards: a pull asks the nodes for
-- their horizons with it, over Citus's cached connections. Empty on a single server.
CREATE TABLE inventory_sync.node_probe (
    k bigint PRIMARY KEY
);
GRANT SELECT ON inventory_sync.node_probe TO PUBLIC;
COMMENT ON TABLE inventory_sync.node_probe IS
    'A row on every shard (Citus, filled by distribute()): what a pull reaches every node through. Empty on a single server.';

-- This node's cluster, database and horizon (the oldest transaction still running), as a pull
-- reads them from every node: "system_identifier database_oid xmin".
CREATE FUNCTION inventory_sync.node_horizon() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (SELECT s.system_identifier FROM pg_catalog.pg_control_system() s)::pg_catalog.text
        OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||)
        (SELECT d.oid FROM pg_catalog.pg_database d
          WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())::pg_catalog.text
        OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||)
        pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::pg_catalog.text
$$;
COMMENT ON FUNCTION inventory_sync.node_horizon() IS
    'This node''s system identifier, database OID and snapshot horizon, as a pull asks every node of a Citus cluster.';

-- Per-field merge policies (lww, the default, has no row). For the default table the fields are
-- keys of data. A table whose writes the server orders (set_ordering) has the policy server_clock
-- on its write-timestamp column. Readable by everyone; set by the table's owner (set_policy and
-- set_ordering check it too).
CREATE TABLE inventory_sync.field_policies (
    tbl    regclass NOT NULL,
    field  text     NOT NULL,
    policy text     NOT NULL CHECK (policy IN ('field_lww', 'delta', 'server_wins', 'server_clock')),
    PRIMARY KEY (tbl, field)
);
ALTER TABLE inventory_sync.field_policies ENABLE ROW LEVEL SECURITY;
CREATE POLICY field_policies_readable ON inventory_sync.field_policies FOR SELECT USING (true);
CREATE POLICY field_policies_by_owner ON inventory_sync.field_policies FOR ALL
    USING (inventory_sync.manages(tbl))
    WITH CHECK (inventory_sync.manages(tbl));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.field_policies TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.field_policies', '');

CREATE VIEW inventory_sync.policies AS
SELECT p.tbl AS table_name, p.field, p.policy FROM inventory_sync.field_policies p;
GRANT SELECT ON inventory_sync.policies TO PUBLIC;
COMMENT ON VIEW inventory_sync.policies IS
    'Fields with a merge policy other than lww (row-level last-write-wins, the default), and the write-timestamp column of each table whose writes the server orders (server_clock, see set_ordering).';

-- A dropped table leaves tracking by itself, so its OID can never be mistaken for a later table.
-- SECURITY DEFINER: when sql_drop fires, the table's pg_class row (which the catalog's policy
-- consults) is already gone.
CREATE FUNCTION inventory_sync.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dropped oid[];
    ids integer[];
    coordinator boolean;
BEGIN
    -- The dropped tables first, then plain statements on the extension's tables: on Citus those
    -- run on other nodes too, where there is no dropped-objects list to join with.
    SELECT pg_catalog.array_agg(d.objid) INTO dropped
      FROM pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid OPERATOR(pg_catalog.=) 0;
    IF dropped IS NULL THEN
        RETURN;
    END IF;
    -- On a Citus worker a table is dropped as the coordinator drops it, and the coordinator's
    -- own trigger removes its sync state from every node (the catalogs are on every node, the
    -- feed is distributed).
    IF pg_catalog.to_regprocedure('pg_catalog.citus_is_coordinator()') IS NOT NULL THEN
        EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO coordinator;
        IF NOT coordinator THEN
            RETURN;
        END IF;
    END IF;
    SELECT pg_catalog.array_agg(t.table_id) INTO ids FROM inventory_sync.tracked t
     WHERE t.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
    IF ids IS NOT NULL THEN
        DELETE FROM inventory_sync.changes c WHERE c.table_id OPERATOR(pg_catalog.=) ANY (ids);
        DELETE FROM inventory_sync.changes_uuid c WHERE c.table_id OPERATOR(pg_catalog.=) ANY (ids);
        DELETE FROM inventory_sync.changes_text c WHERE c.table_id OPERATOR(pg_catalog.=) ANY (ids);
        DELETE FROM inventory_sync.tracked t WHERE t.table_id OPERATOR(pg_catalog.=) ANY (ids);
    END IF;
    DELETE FROM inventory_sync.field_policies p WHERE p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (dropped);
END
$$;
REVOKE ALL ON FUNCTION inventory_sync.forget_dropped_tables() FROM PUBLIC;
CREATE EVENT TRIGGER inventory_sync_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION inventory_sync.forget_dropped_tables();

-- The functions check the caller's rights on each table they touch; the schema itself is open.
GRANT USAGE ON SCHEMA inventory_sync TO PUBLIC;

-- Backups: pg_dump leaves out the contents of an extension's tables unless the extension marks
-- them. Every table that holds data or sync state is marked (tracked and field_policies above),
-- and so are the sequences of the journal's ids and of table ids, so a restored database goes
-- on without reusing ids. Eras are created by the first write, never by this script, so a
-- restore (which runs this script, then loads the dumped rows) meets no rows of its own.
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.inventory', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.conflicts', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('inventory_sync.conflicts', 'conflict_id')::pg_catalog.regclass, '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.changes', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.mutations', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.changes_uuid', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.mutations_uuid', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.changes_text', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.mutations_text', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.purge_horizon', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.eras', '');
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('inventory_sync.tracked', 'table_id')::pg_catalog.regclass, '');

