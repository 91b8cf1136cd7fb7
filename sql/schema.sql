-- The extension's tables. The schema inventory_sync itself comes from the control file.
-- Keys include the row id, so the tables can be distributed by it (Citus) and a write touches
-- only rows of its own id; identity columns are the tables' own, no standalone sequence.

CREATE TABLE inventory_sync.inventory (
    id         bigint      PRIMARY KEY,
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb
               CHECK (jsonb_typeof(data) = 'object'),
    updated_at timestamptz NOT NULL
);

CREATE TABLE inventory_sync.conflicts (
    row_id         text        NOT NULL,
    conflict_id    bigint      GENERATED ALWAYS AS IDENTITY,
    table_name     text        NOT NULL,
    reason         text        NOT NULL CHECK (reason IN ('stale', 'clock_skew')),
    client_payload jsonb       NOT NULL,
    client_ts      timestamptz NOT NULL,
    server_data    jsonb,
    detected_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user        name        NOT NULL DEFAULT current_user,
    PRIMARY KEY (row_id, conflict_id)
);

CREATE INDEX conflicts_detected_at_idx ON inventory_sync.conflicts (detected_at);

COMMENT ON TABLE inventory_sync.inventory IS
    'The default synced table: one item per id, its fields in data, updated_at the client_ts of the write that produced the current state.';
COMMENT ON COLUMN inventory_sync.inventory.data IS
    'The item''s fields. Writes merge into it key by key; the reserved keys id and updated_at never land here.';
COMMENT ON COLUMN inventory_sync.inventory.updated_at IS
    'client_ts of the write that produced the current state; the last-write-wins clock.';
COMMENT ON TABLE inventory_sync.conflicts IS
    'The journal: every write that was not applied, with what the client sent and what the server held.';
COMMENT ON COLUMN inventory_sync.conflicts.row_id IS
    'The key of the row the write was for, as text (the same column for bigint, integer, uuid and text keys).';
COMMENT ON COLUMN inventory_sync.conflicts.table_name IS 'The table the write was for, schema-qualified.';
COMMENT ON COLUMN inventory_sync.conflicts.reason IS
    'stale: the stored row was newer; clock_skew: client_ts ran ahead of the server clock by more than inventory_sync.max_clock_skew.';
COMMENT ON COLUMN inventory_sync.conflicts.client_payload IS 'The payload exactly as the client sent it.';
COMMENT ON COLUMN inventory_sync.conflicts.client_ts IS 'The client''s timestamp for the write.';
COMMENT ON COLUMN inventory_sync.conflicts.server_data IS
    'The row that won, as a client stores it (data plus id and updated_at); null when a rejected write had no row.';
COMMENT ON COLUMN inventory_sync.conflicts.detected_at IS 'When the conflict was decided (clock_timestamp()).';
COMMENT ON COLUMN inventory_sync.conflicts.db_user IS 'The database user that sent the write.';

-- Tracked tables: the application's own tables under sync. Key and timestamp columns are kept by
-- number, so renaming them does not break tracking. Readable by everyone (like pg_class); rows can
-- be added or removed only for tables the current user owns (the policy below), which is also
-- what track() and untrack() check, with a clearer error.
CREATE TABLE inventory_sync.tracked (
    tbl        regclass    PRIMARY KEY,
    key_attnum smallint    NOT NULL,
    ts_attnum  smallint    NOT NULL,
    tracked_at timestamptz NOT NULL DEFAULT now(),
    tracked_by name        NOT NULL DEFAULT current_user
);
ALTER TABLE inventory_sync.tracked ENABLE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON inventory_sync.tracked
    USING (true)
    WITH CHECK (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl), 'USAGE'));
CREATE POLICY owner_deletes ON inventory_sync.tracked AS RESTRICTIVE FOR DELETE
    USING (pg_catalog.pg_has_role(
        (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl), 'USAGE'));
GRANT SELECT, INSERT, UPDATE, DELETE ON inventory_sync.tracked TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('inventory_sync.tracked', '');

COMMENT ON TABLE inventory_sync.tracked IS
    'Tables under sync (see inventory_sync.tracked_tables for names); maintained by track() and untrack().';

CREATE VIEW inventory_sync.tracked_tables AS
SELECT t.tbl                                    AS table_name,
       k.attname                                AS key_column,
       pg_catalog.format_type(k.atttypid, NULL) AS key_type,
       ts.attname                               AS ts_column,
       t.tracked_at,
       t.tracked_by
  FROM inventory_sync.tracked t
  JOIN pg_catalog.pg_attribute k  ON k.attrelid = t.tbl AND k.attnum = t.key_attnum
  JOIN pg_catalog.pg_attribute ts ON ts.attrelid = t.tbl AND ts.attnum = t.ts_attnum;
GRANT SELECT ON inventory_sync.tracked_tables TO PUBLIC;
COMMENT ON VIEW inventory_sync.tracked_tables IS
    'The tracked tables with their key and write-timestamp columns.';

-- A dropped table leaves tracking by itself, so its OID can never be mistaken for a later table.
-- SECURITY DEFINER: when sql_drop fires, the table's pg_class row (which the catalog's policy
-- consults) is already gone.
CREATE FUNCTION inventory_sync.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM inventory_sync.tracked t
     USING pg_catalog.pg_event_trigger_dropped_objects() d
     WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.objsubid OPERATOR(pg_catalog.=) 0
       AND t.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid;
END
$$;
REVOKE ALL ON FUNCTION inventory_sync.forget_dropped_tables() FROM PUBLIC;
CREATE EVENT TRIGGER inventory_sync_forget_dropped_tables ON sql_drop
    EXECUTE FUNCTION inventory_sync.forget_dropped_tables();

-- The functions check the caller's rights on each table they touch; the schema itself is open.
GRANT USAGE ON SCHEMA inventory_sync TO PUBLIC;
