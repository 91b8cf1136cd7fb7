-- Who orders a table's writes: the devices' clocks (client_ts, the default) or the server, by
-- arrival. An app that cannot trust its devices' clocks lets the server order, and finds
-- conflicts by base_version instead.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE shelves (code text PRIMARY KEY, capacity integer, updated_at timestamptz);
SELECT inventory_sync.track('shelves');
SELECT inventory_sync.set_ordering('shelves', 'server');
SELECT * FROM inventory_sync.policies;
-- The server stamps every write with its own clock (after the row's own stamp): the answers'
-- updated_at and version are the server's, different on each run, so this file compares them in
-- SQL. A device whose clock is a day behind writes the shelf; client_ts may also be left out.
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 80}', now() - interval '1 day') AS a \gset
SELECT :'a'::jsonb - 'updated_at' - 'version' AS answer,
       (:'a'::jsonb->>'updated_at')::timestamptz > now() - interval '1 hour' AS stamped_by_the_server;
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 60}', NULL) AS b \gset
SELECT :'b'::jsonb->>'status' AS status,
       (:'b'::jsonb->>'updated_at')::timestamptz > (:'a'::jsonb->>'updated_at')::timestamptz AS later;
-- The later arrival won, whatever the clocks said.
SELECT code, capacity FROM shelves;
-- A device that made its change at the first version, which the row has moved on from: a
-- conflict, journaled, with the row and its version.
SELECT c->>'status' AS status, c->'server_data'->'capacity' AS server_capacity,
       c->>'version' = :'b'::jsonb->>'version' AS at_the_current_version
  FROM inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 70}', NULL,
                                     base_version => :'a'::jsonb->>'version') AS c;
SELECT row_id, reason, client_payload FROM inventory_sync.conflicts;
-- A push may leave client_ts out for such a table (not for one the devices' clocks order).
SELECT o - 'updated_at' - 'version' AS outcome
  FROM jsonb_array_elements(inventory_sync.sync_push(
         '[{"table": "shelves", "id": "B-01", "payload": {"capacity": 10}},
           {"id": 1, "payload": {"note": "x"}}]')) o;
-- Back to the devices' clocks.
SELECT inventory_sync.set_ordering('shelves', 'client_ts');
SELECT count(*) AS policies FROM inventory_sync.policies;
\set VERBOSITY default
SELECT inventory_sync.sync_upsert_in('shelves', 'A-12', '{"capacity": 1}', NULL);
SELECT inventory_sync.set_ordering('shelves', 'arrival');
DROP EXTENSION inventory_sync;
DROP TABLE shelves;
