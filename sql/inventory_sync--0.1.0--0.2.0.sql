-- inventory_sync 0.1.0 -> 0.2.0: feed positions and table identities that survive a backup and
-- restore. Run with ALTER EXTENSION inventory_sync UPDATE, after installing 0.2.0 and restarting
-- the server (or every session), so no session still runs 0.1.0's library.
--
-- Positions: 0.1.0 stored the writing transaction's id (xid8); it becomes the position, the same
-- number (era 0), so cursors handed out by 0.1.0 continue where they were. The first write after
-- the update starts era 1, above every stored position (inventory_sync.eras).
-- Table identities: the feed, the mutation log and the purge horizon named tables by OID; they
-- now name them by table_id (0: the default table), which tracked assigns. Feed entries and
-- mutation ids of tables no longer tracked are dropped: no pull or write reaches them.

\echo Use "ALTER EXTENSION inventory_sync UPDATE TO '0.2.0'" to load this file. \quit

-- A write the table's own rules refuse (a constraint, a trigger) is journaled with that reason.
ALTER DOMAIN inventory_sync.conflict_reason DROP CONSTRAINT conflict_reason_check;
ALTER DOMAIN inventory_sync.conflict_reason ADD CONSTRAINT conflict_reason_check
    CHECK (VALUE OPERATOR(pg_catalog.=) ANY ('{stale,clock_skew,constraint,trigger}'::text[]));
COMMENT ON DOMAIN inventory_sync.conflict_reason IS 'Why a write was not applied: stale, clock_skew, or refused by the table''s constraint or trigger.';

-- The drops below are not tables leaving tracking: the event trigger waits for the end.
ALTER EVENT TRIGGER inventory_sync_forget_dropped_tables DISABLE;

-- Table ids.
ALTER TABLE inventory_sync.tracked ADD COLUMN table_id serial UNIQUE;
GRANT USAGE ON SEQUENCE inventory_sync.tracked_table_id_seq TO PUBLIC;
COMMENT ON COLUMN inventory_sync.tracked.table_id IS
    'The table''s identity in the feed, the mutation log and cursors (0 is the default table): unlike its OID, the same after a restore.';
SELECT pg_catalog.pg_extension_config_dump(
    pg_catalog.pg_get_serial_sequence('inventory_sync.tracked', 'table_id')::pg_catalog.regclass, '');

-- The journal's ids come from a sequence default instead of an identity column (Citus cannot take
-- a table with an identity column back from the workers: inventory_sync.undistribute()). The
-- numbering goes on where it was.
ALTER EXTENSION inventory_sync DROP SEQUENCE inventory_sync.conflicts_conflict_id_seq;
DO $$
DECLARE
    last bigint;
    called boolean;
BEGIN
    SELECT s.last_value, s.is_called INTO last, called FROM inventory_sync.conflicts_conflict_id_seq s;
    ALTER TABLE inventory_sync.conflicts ALTER COLUMN conflict_id DROP IDENTITY;
    CREATE SEQUENCE inventory_sync.conflicts_conflict_id_seq OWNED BY inventory_sync.conflicts.conflict_id;
    PERFORM pg_catalog.setval('inventory_sync.conflicts_conflict_id_seq', last, called);
END
$$;
ALTER TABLE inventory_sync.conflicts ALTER COLUMN conflict_id
    SET DEFAULT pg_catalog.nextval('inventory_sync.conflicts_conflict_id_seq'::pg_catalog.regclass);
GRANT USAGE ON SEQUENCE inventory_sync.conflicts_conflict_id_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.conflicts_conflict_id_seq', '');

CREATE OR REPLACE VIEW inventory_sync.tracked_tables AS
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

CREATE FUNCTION inventory_sync.table_of(table_id integer) RETURNS regclass
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN $1 OPERATOR(pg_catalog.=) 0 THEN 'inventory_sync.inventory'::pg_catalog.regclass
                ELSE (SELECT t.tbl FROM inventory_sync.tracked t WHERE t.table_id OPERATOR(pg_catalog.=) $1) END
$$;
COMMENT ON FUNCTION inventory_sync.table_of(integer) IS
    'The table a table_id names (0: the default table), or NULL.';

-- A table OID of 0.1.0 as a table id; NULL for a table no longer tracked. Used by this script only.
CREATE FUNCTION inventory_sync.update_0_2_0_table_id(relid oid) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN $1 OPERATOR(pg_catalog.=) 'inventory_sync.inventory'::pg_catalog.regclass::pg_catalog.oid THEN 0
                ELSE (SELECT t.table_id FROM inventory_sync.tracked t
                       WHERE t.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1) END
$$;

-- The default table: the transaction id becomes the position.
DROP INDEX inventory_sync.inventory_change_idx;
ALTER TABLE inventory_sync.inventory ALTER COLUMN change_xid DROP DEFAULT;
ALTER TABLE inventory_sync.inventory
    ALTER COLUMN change_xid TYPE bigint USING change_xid::pg_catalog.text::pg_catalog.int8;
ALTER TABLE inventory_sync.inventory RENAME COLUMN change_xid TO position;
CREATE INDEX inventory_position_idx ON inventory_sync.inventory (position, id);
COMMENT ON COLUMN inventory_sync.inventory.position IS
    'The feed position of the row''s last change (see inventory_sync.eras).';

-- The tracked tables' feed.
DROP POLICY changes_readable ON inventory_sync.changes;
DROP INDEX inventory_sync.changes_feed_idx;
DELETE FROM inventory_sync.changes c WHERE inventory_sync.update_0_2_0_table_id(c.tbl::pg_catalog.oid) IS NULL;
ALTER TABLE inventory_sync.changes
    ALTER COLUMN tbl TYPE integer USING inventory_sync.update_0_2_0_table_id(tbl::pg_catalog.oid);
ALTER TABLE inventory_sync.changes RENAME COLUMN tbl TO table_id;
ALTER TABLE inventory_sync.changes
    ALTER COLUMN change_xid TYPE bigint USING change_xid::pg_catalog.text::pg_catalog.int8;
ALTER TABLE inventory_sync.changes RENAME COLUMN change_xid TO position;
CREATE INDEX changes_position_idx ON inventory_sync.changes (position, table_id, row_id);
CREATE POLICY changes_readable ON inventory_sync.changes FOR SELECT
    USING (pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'SELECT'));

-- Mutation ids.
DROP POLICY mutations_of_oneself ON inventory_sync.mutations;
DELETE FROM inventory_sync.mutations m WHERE inventory_sync.update_0_2_0_table_id(m.tbl::pg_catalog.oid) IS NULL;
ALTER TABLE inventory_sync.mutations
    ALTER COLUMN tbl TYPE integer USING inventory_sync.update_0_2_0_table_id(tbl::pg_catalog.oid);
ALTER TABLE inventory_sync.mutations RENAME COLUMN tbl TO table_id;
CREATE POLICY mutations_of_oneself ON inventory_sync.mutations
    USING (db_user OPERATOR(pg_catalog.=) CURRENT_USER)
    WITH CHECK (db_user OPERATOR(pg_catalog.=) CURRENT_USER
                AND pg_catalog.has_table_privilege(inventory_sync.table_of(table_id), 'INSERT, UPDATE, DELETE'));

-- The purge horizon (a table no longer tracked counts as the default table: it only orders).
ALTER TABLE inventory_sync.purge_horizon
    ALTER COLUMN change_xid TYPE bigint USING change_xid::pg_catalog.text::pg_catalog.int8;
ALTER TABLE inventory_sync.purge_horizon RENAME COLUMN change_xid TO position;
ALTER TABLE inventory_sync.purge_horizon
    ALTER COLUMN tbl TYPE integer USING COALESCE(inventory_sync.update_0_2_0_table_id(tbl), 0);
ALTER TABLE inventory_sync.purge_horizon RENAME COLUMN tbl TO table_id;
-- One row per era (the positions 0.1.0 stored are of era 0): the key column becomes the era.
ALTER TABLE inventory_sync.purge_horizon DROP CONSTRAINT purge_horizon_single_check;
ALTER TABLE inventory_sync.purge_horizon ALTER COLUMN single DROP DEFAULT;
ALTER TABLE inventory_sync.purge_horizon
    ALTER COLUMN single TYPE integer USING (position OPERATOR(pg_catalog.>>) 48)::integer;
ALTER TABLE inventory_sync.purge_horizon RENAME COLUMN single TO era;

-- Shard keys: a row's side rows (feed entry, mutation ids, journal entries) carry the key a Citus
-- cluster distributes them by, with the rows they describe: the key itself for an integer key
-- (the default table's, a tracked table's bigint or integer key), else hashtextextended(row_id, 0).
-- Journal entries of tables no longer tracked take the hash.

-- Whether table_id's key is an integer (the default table's is). The key's text is cast in the
-- statements below, on a column: a cast of a function's parameter could be folded, and fail, when
-- the server plans the function with the value in place (PostgreSQL 18 does), whichever branch of
-- a CASE it is in.
CREATE FUNCTION inventory_sync.update_0_2_0_integer_key(table_id integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT $1 OPERATOR(pg_catalog.=) 0 OR EXISTS (
             SELECT FROM inventory_sync.tracked t
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.tbl
                AND a.attnum OPERATOR(pg_catalog.=) t.key_attnum
              WHERE t.table_id OPERATOR(pg_catalog.=) $1
                AND a.atttypid OPERATOR(pg_catalog.=) ANY ('{int4,int8}'::pg_catalog.regtype[]))
$$;
ALTER TABLE inventory_sync.changes ADD COLUMN shard_key bigint;
UPDATE inventory_sync.changes c SET shard_key = CASE WHEN inventory_sync.update_0_2_0_integer_key(c.table_id)
    THEN c.row_id::pg_catalog.int8 ELSE pg_catalog.hashtextextended(c.row_id, 0) END;
ALTER TABLE inventory_sync.changes ALTER COLUMN shard_key SET NOT NULL;
ALTER TABLE inventory_sync.changes DROP CONSTRAINT changes_pkey;
ALTER TABLE inventory_sync.changes ADD PRIMARY KEY (row_id, table_id, shard_key);
ALTER TABLE inventory_sync.mutations ADD COLUMN shard_key bigint;
UPDATE inventory_sync.mutations m SET shard_key = CASE WHEN inventory_sync.update_0_2_0_integer_key(m.table_id)
    THEN m.row_id::pg_catalog.int8 ELSE pg_catalog.hashtextextended(m.row_id, 0) END;
ALTER TABLE inventory_sync.mutations ALTER COLUMN shard_key SET NOT NULL;
ALTER TABLE inventory_sync.mutations DROP CONSTRAINT mutations_pkey;
ALTER TABLE inventory_sync.mutations ADD PRIMARY KEY (row_id, table_id, client_id, mutation_id, shard_key);
ALTER TABLE inventory_sync.conflicts ADD COLUMN shard_key bigint;
UPDATE inventory_sync.conflicts j SET shard_key = CASE WHEN inventory_sync.update_0_2_0_integer_key(
    CASE WHEN j.table_name OPERATOR(pg_catalog.=) 'inventory_sync.inventory' THEN 0
         ELSE (SELECT t.table_id FROM inventory_sync.tracked t
                WHERE t.tbl OPERATOR(pg_catalog.=) pg_catalog.to_regclass(j.table_name)) END)
    THEN j.row_id::pg_catalog.int8 ELSE pg_catalog.hashtextextended(j.row_id, 0) END;
ALTER TABLE inventory_sync.conflicts ALTER COLUMN shard_key SET NOT NULL;
ALTER TABLE inventory_sync.conflicts DROP CONSTRAINT conflicts_pkey;
ALTER TABLE inventory_sync.conflicts ADD PRIMARY KEY (row_id, conflict_id, shard_key);
COMMENT ON COLUMN inventory_sync.conflicts.shard_key IS
    'The row''s shard key, which a Citus cluster distributes the journal by: the key itself for an integer key, else hashtextextended(row_id, 0); for a uuid or text key on a Citus cluster, a key of the default table on the row''s node.';
COMMENT ON COLUMN inventory_sync.changes.shard_key IS
    'The row''s key (a bigint or integer key), which a Citus cluster distributes the feed by, with the default table.';
COMMENT ON COLUMN inventory_sync.mutations.shard_key IS
    'The row''s key (a bigint or integer key), which a Citus cluster distributes the mutation log by, with the default table.';
DROP FUNCTION inventory_sync.update_0_2_0_integer_key(integer);

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
-- The uuid and text tables' feed records and mutation ids move to their own tables.
CREATE FUNCTION inventory_sync.update_0_2_0_key_type(table_id integer) RETURNS pg_catalog.regtype
LANGUAGE sql STABLE AS $$
    SELECT a.atttypid::pg_catalog.regtype FROM inventory_sync.tracked t
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.tbl
       AND a.attnum OPERATOR(pg_catalog.=) t.key_attnum
     WHERE t.table_id OPERATOR(pg_catalog.=) $1
$$;
WITH moved AS (DELETE FROM inventory_sync.changes c
                WHERE inventory_sync.update_0_2_0_key_type(c.table_id) OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
               RETURNING c.*)
INSERT INTO inventory_sync.changes_uuid
       (table_id, row_id, id, op, ts, client_id, field_clocks, position, changed_at, shard_key)
SELECT m.table_id, m.row_id, m.id, m.op, m.ts, m.client_id, m.field_clocks, m.position, m.changed_at,
       m.row_id::pg_catalog.uuid
  FROM moved m;
WITH moved AS (DELETE FROM inventory_sync.mutations m
                WHERE inventory_sync.update_0_2_0_key_type(m.table_id) OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
               RETURNING m.*)
INSERT INTO inventory_sync.mutations_uuid
       (row_id, table_id, client_id, mutation_id, answer, applied_at, db_user, shard_key)
SELECT m.row_id, m.table_id, m.client_id, m.mutation_id, m.answer, m.applied_at, m.db_user,
       m.row_id::pg_catalog.uuid
  FROM moved m;
WITH moved AS (DELETE FROM inventory_sync.changes c
                WHERE inventory_sync.update_0_2_0_key_type(c.table_id) OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype
               RETURNING c.*)
INSERT INTO inventory_sync.changes_text
       (table_id, row_id, id, op, ts, client_id, field_clocks, position, changed_at, shard_key)
SELECT m.table_id, m.row_id, m.id, m.op, m.ts, m.client_id, m.field_clocks, m.position, m.changed_at, m.row_id
  FROM moved m;
WITH moved AS (DELETE FROM inventory_sync.mutations m
                WHERE inventory_sync.update_0_2_0_key_type(m.table_id) OPERATOR(pg_catalog.=) 'pg_catalog.text'::pg_catalog.regtype
               RETURNING m.*)
INSERT INTO inventory_sync.mutations_text
       (row_id, table_id, client_id, mutation_id, answer, applied_at, db_user, shard_key)
SELECT m.row_id, m.table_id, m.client_id, m.mutation_id, m.answer, m.applied_at, m.db_user, m.row_id
  FROM moved m;
DROP FUNCTION inventory_sync.update_0_2_0_key_type(integer);
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.changes_uuid', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.mutations_uuid', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.changes_text', '');
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.mutations_text', '');

DROP FUNCTION inventory_sync.update_0_2_0_table_id(oid);

-- From PostgreSQL 18 on, NOT NULL constraints have names, made from the column's at creation:
-- a renamed column keeps the old one. Named as a fresh install names them.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.tbl, n.old, n.new FROM (
               SELECT k.conrelid::pg_catalog.regclass AS tbl, k.conname::pg_catalog.text AS old,
                      pg_catalog.concat(c.relname, '_', a.attname, '_not_null') AS new
                 FROM pg_catalog.pg_constraint k
                 JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) k.conrelid
                 JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid
                  AND a.attnum OPERATOR(pg_catalog.=) k.conkey[1]
                WHERE k.contype OPERATOR(pg_catalog.=) 'n'
                  AND c.relnamespace OPERATOR(pg_catalog.=) 'inventory_sync'::pg_catalog.regnamespace) n
              WHERE n.old OPERATOR(pg_catalog.<>) n.new
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', r.tbl, r.old, r.new);
    END LOOP;
END
$$;

-- Eras.
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
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.eras', '');

-- A dropped table's feed entries go with its tracking row.
CREATE OR REPLACE FUNCTION inventory_sync.forget_dropped_tables() RETURNS event_trigger
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
ALTER EVENT TRIGGER inventory_sync_forget_dropped_tables ENABLE;

-- The position of a change, also the default table's default for rows inserted directly.
CREATE FUNCTION inventory_sync."change_position"() RETURNS bigint
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'change_position_wrapper';
COMMENT ON FUNCTION inventory_sync.change_position() IS
    'The feed position of a change the current transaction makes now (see inventory_sync.eras).';
ALTER TABLE inventory_sync.inventory ALTER COLUMN position SET DEFAULT inventory_sync.change_position();

CREATE FUNCTION inventory_sync."undistribute"() RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'undistribute_wrapper';
COMMENT ON FUNCTION inventory_sync.undistribute() IS
    'On a Citus coordinator: take the extension''s tables back from the workers, rows and all (before DROP EXTENSION, or to leave Citus). Answers the tables taken back and the coordinator''s new era.';

-- A pull asks the nodes of a Citus cluster for their horizons, which a parallel worker cannot.
ALTER FUNCTION inventory_sync.sync_pull(text, integer) PARALLEL RESTRICTED;

-- On a Citus cluster, a row trigger that takes the feed position on the node storing the row.
CREATE FUNCTION inventory_sync."stamp_position"() RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'stamp_position_wrapper';
COMMENT ON FUNCTION inventory_sync.stamp_position() IS
    'On a Citus cluster (distribute() puts it on the default table and the change feed): a row trigger giving the row the feed position of the node that stores it.';

-- The catalogs' policies call a function instead of holding a subquery, so Citus can replicate
-- the catalogs to every node.
CREATE FUNCTION inventory_sync.manages(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1), 'USAGE')
$$;
COMMENT ON FUNCTION inventory_sync.manages(regclass) IS
    'Whether the current user may manage the sync of the table: a member of its owner role.';

ALTER POLICY owner_only ON inventory_sync.tracked WITH CHECK (inventory_sync.manages(tbl));
ALTER POLICY owner_updates ON inventory_sync.tracked USING (inventory_sync.manages(tbl));
ALTER POLICY owner_deletes ON inventory_sync.tracked USING (inventory_sync.manages(tbl));
ALTER POLICY field_policies_by_owner ON inventory_sync.field_policies
    USING (inventory_sync.manages(tbl)) WITH CHECK (inventory_sync.manages(tbl));

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

-- Spreading the extension over a Citus cluster.
CREATE FUNCTION inventory_sync."distribute"() RETURNS jsonb
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'distribute_wrapper';
COMMENT ON FUNCTION inventory_sync.distribute() IS
    'On a Citus coordinator: distribute the extension''s tables (once) and give every node an era of its own to write in. Run again after adding a node. Answers the cohort and each node''s era.';

-- sync_push for large uploads, json in and out.
CREATE FUNCTION inventory_sync."sync_push_json"("changes" json, "atomic" bool DEFAULT false) RETURNS json
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_push_json_wrapper';
COMMENT ON FUNCTION inventory_sync.sync_push_json(json, boolean) IS
    'sync_push for large uploads: the changes and the outcomes as json text, never built whole as jsonb, so memory stays near the size of the text.';

-- One more table spread over a Citus cluster, after distribute().
CREATE FUNCTION inventory_sync."distribute"("tbl" regclass) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'distribute_table_wrapper';
COMMENT ON FUNCTION inventory_sync.distribute(regclass) IS
    'On a Citus coordinator, after distribute(): distribute one more table by its key, colocated with the rows of its key type, so that it can be tracked. Answers the table and how.';

-- A push per node on a Citus cluster: the groups, and the push of one group.
CREATE FUNCTION inventory_sync."push_groups"("changes" jsonb) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'push_groups_wrapper';
COMMENT ON FUNCTION inventory_sync.push_groups(jsonb) IS
    'On a Citus cluster: which node each change of a push is for, as [{"node_key", "indexes"}], so that a backend sends each node its own push (sync_push_on). One group on a single server.';
CREATE FUNCTION inventory_sync."sync_push_on"("node_key" bigint, "changes" jsonb, "atomic" bool DEFAULT false) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_push_on_wrapper';
COMMENT ON FUNCTION inventory_sync.sync_push_on(bigint, jsonb, boolean) IS
    'sync_push of the changes of one node (a group of push_groups): on a Citus cluster it runs whole on the node of node_key; elsewhere, or with a null key, it is sync_push.';

-- The tracked-table calls with the key typed: a number (bigint and integer keys) or a uuid.
CREATE FUNCTION inventory_sync."sync_upsert_in"("tbl" regclass, "id" bigint, "payload" jsonb, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base" jsonb DEFAULT NULL,
    "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_upsert_in_bigint_wrapper';
CREATE FUNCTION inventory_sync."sync_upsert_in"("tbl" regclass, "id" uuid, "payload" jsonb, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base" jsonb DEFAULT NULL,
    "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_upsert_in_uuid_wrapper';
CREATE FUNCTION inventory_sync."sync_delete_in"("tbl" regclass, "id" bigint, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_delete_in_bigint_wrapper';
CREATE FUNCTION inventory_sync."sync_delete_in"("tbl" regclass, "id" uuid, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_delete_in_uuid_wrapper';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, bigint, jsonb, timestamptz, text, text, jsonb, text) IS
    'sync_upsert_in with a bigint or integer key given as a number.';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, uuid, jsonb, timestamptz, text, text, jsonb, text) IS
    'sync_upsert_in with a uuid key given as a uuid.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, bigint, timestamptz, text, text, text) IS
    'sync_delete_in with a bigint or integer key given as a number.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, uuid, timestamptz, text, text, text) IS
    'sync_delete_in with a uuid key given as a uuid.';

-- 0.1.0 ran the tracked-table functions with plan_cache_mode = force_generic_plan, for statements
-- whose plan depended on whether the write had a client_id. No statement does now, and Citus
-- cannot plan its statements generically: the functions run with the caller's setting (the
-- tracked-table calls are made again below, without it).
ALTER FUNCTION inventory_sync.sync_push(jsonb, boolean)
    RESET plan_cache_mode;

COMMENT ON FUNCTION inventory_sync.untrack(regclass) IS
    'Take a table out of sync; its rows, journal entries and policies stay, its feed entries and tombstones go. Owner only.';

-- The write functions take a base_version (compare-and-set): new signatures.
DROP FUNCTION inventory_sync.sync_upsert(bigint, jsonb, timestamptz, text, text, jsonb);
DROP FUNCTION inventory_sync.sync_delete(bigint, timestamptz, text, text);
DROP FUNCTION inventory_sync.sync_upsert_in(regclass, text, jsonb, timestamptz, text, text, jsonb);
DROP FUNCTION inventory_sync.sync_delete_in(regclass, text, timestamptz, text, text);
CREATE FUNCTION inventory_sync."sync_upsert"("id" bigint, "payload" jsonb, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base" jsonb DEFAULT NULL,
    "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_upsert_wrapper';
CREATE FUNCTION inventory_sync."sync_delete"("id" bigint, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_delete_wrapper';
CREATE FUNCTION inventory_sync."sync_upsert_in"("tbl" regclass, "id" TEXT, "payload" jsonb, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base" jsonb DEFAULT NULL,
    "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_upsert_in_wrapper';
CREATE FUNCTION inventory_sync."sync_delete_in"("tbl" regclass, "id" TEXT, "client_ts" timestamptz,
    "client_id" TEXT DEFAULT NULL, "mutation_id" TEXT DEFAULT NULL, "base_version" TEXT DEFAULT NULL) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_delete_in_wrapper';
COMMENT ON FUNCTION inventory_sync.sync_upsert(bigint, jsonb, timestamptz, text, text, jsonb, text) IS
    'Write one item of inventory_sync.inventory with last-write-wins, atomically. Answers jsonb: applied (with created and the row''s new version), conflict (with server_data and its version, journaled) or rejected (clock skew, journaled). With client_id and mutation_id, a repeat answers the first answer with duplicate: true. With base_version, it applies only if the row is still at that version.';
COMMENT ON FUNCTION inventory_sync.sync_delete(bigint, timestamptz, text, text, text) IS
    'Delete one item of inventory_sync.inventory with last-write-wins, leaving a tombstone so older writes still lose. With base_version, only if the row is still at that version.';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, text, jsonb, timestamptz, text, text, jsonb, text) IS
    'Write one row of a tracked table with last-write-wins, atomically: payload keys are column names. Answers as sync_upsert does, with server_data the row as JSON.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, text, timestamptz, text, text, text) IS
    'Delete one row of a tracked table with last-write-wins; its tombstone is kept in inventory_sync.changes.';

-- Row versions (server-issued, for compare-and-set): the default table's rows and the feed's
-- records carry one; rows written before have version 0 until their next write.
ALTER TABLE inventory_sync.inventory ADD COLUMN version bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN inventory_sync.inventory.version IS
    'The row''s version, given by the server at each applied write: its clock in microseconds, or one more than the version before if that is not below it (0: never written by a sync function). Clients see it as 16 hex digits and send it back as base_version.';
ALTER TABLE inventory_sync.changes ADD COLUMN version bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN inventory_sync.changes.version IS
    'The row''s version (see inventory_sync.inventory.version): its own or its tombstone''s.';

-- Who orders a table's writes (set_ordering): the server, recorded as the policy server_clock of
-- the table's write-timestamp column.
ALTER TABLE inventory_sync.field_policies DROP CONSTRAINT field_policies_policy_check;
ALTER TABLE inventory_sync.field_policies ADD CONSTRAINT field_policies_policy_check
    CHECK (policy IN ('field_lww', 'delta', 'server_wins', 'server_clock'));
COMMENT ON VIEW inventory_sync.policies IS
    'Fields with a merge policy other than lww (row-level last-write-wins, the default), and the write-timestamp column of each table whose writes the server orders (server_clock, see set_ordering).';
CREATE FUNCTION inventory_sync."set_ordering"("tbl" regclass, "ordering" TEXT) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_ordering_wrapper';
COMMENT ON FUNCTION inventory_sync.set_ordering(regclass, text) IS
    'Set who orders a table''s writes: client_ts (the devices'' clocks, the default) or server (arrival order, client_ts not needed; conflicts only from base_version). Owner only.';
