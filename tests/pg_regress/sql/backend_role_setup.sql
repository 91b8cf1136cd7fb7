-- Integrating: the database side, set up once (as the tables' owner).
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
-- The application's own table. The server keeps each row's write time in updated_at.
CREATE TABLE products (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    stock      integer NOT NULL DEFAULT 0,
    price      numeric(10,2),
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('products');
-- Stock is a counter: devices send adjustments with the value they started from.
SELECT inventory_sync.set_policy('products', 'stock', 'delta');
-- The role the backend connects as: rights on the synced table, and to read the journal.
CREATE ROLE isync_guide_backend LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON products TO isync_guide_backend;
GRANT SELECT ON inventory_sync.conflicts TO isync_guide_backend;
-- Settings for every connection of that role, so a pooled connection needs no SET.
ALTER ROLE isync_guide_backend SET TimeZone = 'UTC';
ALTER ROLE isync_guide_backend SET inventory_sync.max_clock_skew = '2min';
SELECT rolname, rolconfig FROM pg_roles WHERE rolname = 'isync_guide_backend';
SELECT table_name, key_column, key_type, ts_column FROM inventory_sync.tracked_tables;
SELECT * FROM inventory_sync.policies;
DROP TABLE products;
DROP EXTENSION inventory_sync;
DROP OWNED BY isync_guide_backend;
DROP ROLE isync_guide_backend;
