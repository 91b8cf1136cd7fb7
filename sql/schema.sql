-- The extension's tables. The schema inventory_sync itself comes from the control file.
-- Keys include the row id, so both tables can be distributed by it (Citus) and a write touches
-- only rows of its own id; identity columns are the tables' own, no standalone sequence.

CREATE TABLE inventory_sync.inventory (
    id         bigint      PRIMARY KEY,
    data       jsonb       NOT NULL DEFAULT '{}'::jsonb
               CHECK (jsonb_typeof(data) = 'object'),
    updated_at timestamptz NOT NULL
);

CREATE TABLE inventory_sync.conflicts (
    id             bigint      NOT NULL,
    conflict_id    bigint      GENERATED ALWAYS AS IDENTITY,
    table_name     text        NOT NULL,
    reason         text        NOT NULL CHECK (reason IN ('stale', 'clock_skew')),
    client_payload jsonb       NOT NULL,
    client_ts      timestamptz NOT NULL,
    server_data    jsonb,
    detected_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    db_user        name        NOT NULL DEFAULT current_user,
    PRIMARY KEY (id, conflict_id)
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
COMMENT ON COLUMN inventory_sync.conflicts.id IS 'The row id the write was for.';
COMMENT ON COLUMN inventory_sync.conflicts.table_name IS 'The table the write was for, schema-qualified.';
COMMENT ON COLUMN inventory_sync.conflicts.reason IS
    'stale: the stored row was newer; clock_skew: client_ts ran ahead of the server clock by more than inventory_sync.max_clock_skew.';
COMMENT ON COLUMN inventory_sync.conflicts.client_payload IS 'The payload exactly as the client sent it.';
COMMENT ON COLUMN inventory_sync.conflicts.client_ts IS 'The client''s timestamp for the write.';
COMMENT ON COLUMN inventory_sync.conflicts.server_data IS
    'The row that won, as a client stores it (data plus id and updated_at); null when a rejected write had no row.';
COMMENT ON COLUMN inventory_sync.conflicts.detected_at IS 'When the conflict was decided (clock_timestamp()).';
COMMENT ON COLUMN inventory_sync.conflicts.db_user IS 'The database user that sent the write.';
