-- Bug: sync_push turned errors that are not a change's fault (serialization failure, deadlock,
-- lock timeout, cancel, object in use, out of memory) into that change's "error" outcome and
-- kept the other changes. Now they abort the whole call with their SQLSTATE and nothing of the
-- call is written; a change's own error (here 23514) is still its outcome.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
\set SHOW_CONTEXT never
CREATE TABLE isync_bug_orders (id bigint PRIMARY KEY, note text, updated_at timestamptz NOT NULL);
SELECT inventory_sync.track('isync_bug_orders');
-- A trigger raising the SQLSTATE a note names, as PostgreSQL would raise it mid-change.
CREATE FUNCTION isync_bug_raise() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.note LIKE 'raise %' THEN
        RAISE EXCEPTION 'simulated %', substr(NEW.note, 7) USING ERRCODE = substr(NEW.note, 7);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER isync_bug_raise BEFORE INSERT OR UPDATE ON isync_bug_orders
    FOR EACH ROW EXECUTE FUNCTION isync_bug_raise();
-- Each push: a valid change of the default table, then the change whose trigger raises.
\set VERBOSITY sqlstate
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 40001"}, "client_ts": "2024-03-01T10:00:00Z"}]');
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 40P01"}, "client_ts": "2024-03-01T10:00:00Z"}]');
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 55P03"}, "client_ts": "2024-03-01T10:00:00Z"}]');
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 57014"}, "client_ts": "2024-03-01T10:00:00Z"}]');
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 55006"}, "client_ts": "2024-03-01T10:00:00Z"}]');
SELECT inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 53200"}, "client_ts": "2024-03-01T10:00:00Z"}]', atomic => false);
\set VERBOSITY default
-- Nothing of those calls was written: no row, no feed entry, no journal entry.
SELECT (SELECT count(*) FROM inventory_sync.inventory) AS items,
       (SELECT count(*) FROM isync_bug_orders) AS orders,
       (SELECT count(*) FROM inventory_sync.changes) AS feed,
       (SELECT count(*) FROM inventory_sync.conflicts) AS journaled;
-- A change the table's own rules refuse (its trigger raises 23514): its rejected outcome, and
-- the other change is applied.
SELECT o->>'status' AS status, o->'id' AS id, o->>'sqlstate' AS sqlstate, o->>'message' AS message
  FROM jsonb_array_elements(inventory_sync.sync_push('[{"id": 1, "payload": {"stock": 1}, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "isync_bug_orders", "id": 1, "payload": {"note": "raise 23514"}, "client_ts": "2024-03-01T10:00:00Z"}]')) AS o;
SELECT id, data FROM inventory_sync.inventory;
SELECT count(*) AS orders FROM isync_bug_orders;
DROP TABLE isync_bug_orders;
DROP FUNCTION isync_bug_raise();
DROP EXTENSION inventory_sync;
