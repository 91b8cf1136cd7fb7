-- sync_push_json: sync_push for large uploads, the batch and the outcomes as json text.
CREATE EXTENSION inventory_sync;
SET TimeZone = 'UTC';
CREATE TABLE products (id uuid PRIMARY KEY, name text, stock integer, updated_at timestamptz);
SELECT inventory_sync.track('products');
SELECT '[
  {"table": "products", "id": "11111111-1111-1111-1111-111111111111",
   "payload": {"name": "Laptop", "stock": 15}, "client_ts": "2024-03-01T10:00:00Z",
   "client_id": "phone-a", "mutation_id": "a-1"},
  {"id": 7, "payload": {"note": "done", "deep": [[[{"a": "x, ]\"}"}]]]}, "client_ts": "2024-03-01T09:00:00Z"},
  {"op": "delete", "id": 8, "client_ts": "2024-03-01T10:00:00Z"},
  {"table": "products", "id": "22222222-2222-2222-2222-222222222222",
   "payload": {"stock": "many"}, "client_ts": "2024-03-01T10:00:00Z"},
  "not a change"
]' AS batch \gset
-- The same outcomes as sync_push, in the order given (each run against the same state).
BEGIN;
SELECT inventory_sync.sync_push_json(:'batch') AS via_json \gset
ROLLBACK;
-- (Their versions differ: each run gave the rows the server's clock of its moment.)
SELECT (SELECT jsonb_agg(o - 'version') FROM jsonb_array_elements(inventory_sync.sync_push(:'batch')) o)
     = (SELECT jsonb_agg(o - 'version') FROM jsonb_array_elements(:'via_json'::jsonb) o) AS same_outcomes;
SELECT pg_typeof(inventory_sync.sync_push_json('[]')) AS answers, inventory_sync.sync_push_json(' [ ] ') AS empty;
SELECT o->>'status' AS status, o->'id' AS id, o->>'sqlstate' AS sqlstate
  FROM json_array_elements(:'via_json'::json) AS o;
-- The batch must be an array; NULL is refused; atomic fails the whole call at the invalid change.
SELECT inventory_sync.sync_push_json('{"changes": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_push_json(NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT inventory_sync.sync_push_json(:'batch', atomic => true);
\echo :LAST_ERROR_SQLSTATE
DROP TABLE products;
DROP EXTENSION inventory_sync;
