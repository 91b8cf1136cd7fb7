-- After the functions: their comments, and what refers to them.

COMMENT ON FUNCTION inventory_sync.sync_upsert(bigint, jsonb, timestamptz, text, text, jsonb, text) IS
    'Write one item of inventory_sync.inventory with last-write-wins, atomically. Answers jsonb: applied (with created and the row''s new version), conflict (with server_data and its version, journaled) or rejected (clock skew, journaled). With client_id and mutation_id, a repeat answers the first answer with duplicate: true. With base_version, it applies only if the row is still at that version.';
COMMENT ON FUNCTION inventory_sync.sync_delete(bigint, timestamptz, text, text, text) IS
    'Delete one item of inventory_sync.inventory with last-write-wins, leaving a tombstone so older writes still lose. With base_version, only if the row is still at that version.';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, text, jsonb, timestamptz, text, text, jsonb, text) IS
    'Write one row of a tracked table with last-write-wins, atomically: payload keys are column names. Answers as sync_upsert does, with server_data the row as JSON.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, text, timestamptz, text, text, text) IS
    'Delete one row of a tracked table with last-write-wins; its tombstone is kept in inventory_sync.changes.';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, bigint, jsonb, timestamptz, text, text, jsonb, text) IS
    'sync_upsert_in with a bigint or integer key given as a number.';
COMMENT ON FUNCTION inventory_sync.sync_upsert_in(regclass, uuid, jsonb, timestamptz, text, text, jsonb, text) IS
    'sync_upsert_in with a uuid key given as a uuid.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, bigint, timestamptz, text, text, text) IS
    'sync_delete_in with a bigint or integer key given as a number.';
COMMENT ON FUNCTION inventory_sync.sync_delete_in(regclass, uuid, timestamptz, text, text, text) IS
    'sync_delete_in with a uuid key given as a uuid.';
COMMENT ON FUNCTION inventory_sync.track(regclass, name) IS
    'Put an existing table under sync: single-column primary key (bigint, integer, uuid or text) and a timestamptz write-timestamp column (default updated_at). Owner only.';
COMMENT ON FUNCTION inventory_sync.untrack(regclass) IS
    'Take a table out of sync; its rows, journal entries and policies stay, its feed entries and tombstones go. Owner only.';
COMMENT ON FUNCTION inventory_sync.sync_push(jsonb, boolean) IS
    'Apply a device''s whole upload: a JSON array of changes (upserts and deletes, default or tracked tables). Answers one outcome per change, in order; an invalid change gets an error outcome unless atomic.';
COMMENT ON FUNCTION inventory_sync.sync_push_json(json, boolean) IS
    'sync_push for large uploads: the changes and the outcomes as json text, never built whole as jsonb, so memory stays near the size of the text.';
COMMENT ON FUNCTION inventory_sync.sync_pull(text, integer) IS
    'The changes after a cursor (NULL: from the beginning), at most lim: {"changes", "cursor", "has_more"}. Never skips a change, including one committed after an earlier pull.';
COMMENT ON FUNCTION inventory_sync.purge_tombstones(interval) IS
    'Remove tombstones older than the interval; cursors from before the purge are refused afterwards. Answers how many.';
COMMENT ON FUNCTION inventory_sync.purge_mutations(interval) IS
    'Forget mutation ids applied longer ago than the interval; answers how many.';
COMMENT ON FUNCTION inventory_sync.set_policy(regclass, text, text) IS
    'Set how a field merges: lww (default), field_lww, delta (numbers, with a base) or server_wins. Owner only.';
COMMENT ON FUNCTION inventory_sync.set_ordering(regclass, text) IS
    'Set who orders a table''s writes: client_ts (the devices'' clocks, the default) or server (arrival order, client_ts not needed; conflicts only from base_version). Owner only.';
COMMENT ON FUNCTION inventory_sync.distribute() IS
    'On a Citus coordinator: distribute the extension''s tables (once) and give every node an era of its own to write in. Run again after adding a node. Answers the cohort and each node''s era.';

COMMENT ON FUNCTION inventory_sync.distribute(regclass) IS
    'On a Citus coordinator, after distribute(): distribute one more table by its key, colocated with the rows of its key type, so that it can be tracked. Answers the table and how.';
COMMENT ON FUNCTION inventory_sync.push_groups(jsonb) IS
    'On a Citus cluster: which node each change of a push is for, as [{"node_key", "indexes"}], so that a backend sends each node its own push (sync_push_on). One group on a single server.';
COMMENT ON FUNCTION inventory_sync.sync_push_on(bigint, jsonb, boolean) IS
    'sync_push of the changes of one node (a group of push_groups): on a Citus cluster it runs whole on the node of node_key; elsewhere, or with a null key, it is sync_push.';

COMMENT ON FUNCTION inventory_sync.undistribute() IS
    'On a Citus coordinator: take the extension''s tables back from the workers, rows and all (before DROP EXTENSION, or to leave Citus). Answers the tables taken back and the coordinator''s new era.';

COMMENT ON FUNCTION inventory_sync.change_position() IS
    'The feed position of a change the current transaction makes now (see inventory_sync.eras).';

COMMENT ON FUNCTION inventory_sync.stamp_position() IS
    'On a Citus cluster (distribute() puts it on the default table and the change feed): a row trigger giving the row the feed position of the node that stores it.';

-- A row inserted into the default table directly (a bulk import) enters the feed too.
ALTER TABLE inventory_sync.inventory ALTER COLUMN position SET DEFAULT inventory_sync.change_position();
