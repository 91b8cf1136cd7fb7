'use strict';
// A sync endpoint for offline-first devices, on top of the inventory_sync extension.
//
// The database decides every write (last-write-wins, conflicts, clock skew, retries by
// mutation id) in one call; this server only turns HTTP into that call and the answer into a
// status code the device acts on. The API is examples/README.md.
//
// Connection: node-postgres reads PGHOST, PGPORT, PGUSER, PGDATABASE and PGPASSWORD by itself.

const http = require('node:http');
const { setTimeout: sleep } = require('node:timers/promises');
const { Pool, DatabaseError } = require('pg');

const MAX_ATTEMPTS = 3; // for serialization failures and deadlocks
const MAX_BODY_BYTES = 16 * 1024 * 1024; // default; createServer({ maxBodyBytes })

// An outcome's status -> the HTTP status of POST /sync/change.
const OUTCOME_HTTP = { applied: 200, merged: 200, conflict: 409, rejected: 422, error: 422 };

const RETRYABLE = new Set(['40001', '40P01']); // serialization failure, deadlock
// Read-only (a standby, or a primary being failed over), shutting down, not accepting connections.
const UNAVAILABLE = new Set(['25006', '57P01', '57P02', '57P03', '53300']);
const NETWORK_ERRORS = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
]);

// The database's JSON goes to the device as text, untouched: JSON.parse would round integers
// beyond 2^53 (the default table's ids are bigint) and turn 999.00 into 999. For the same reason
// the request body goes to the database as the text the device sent, once parsed here only to
// check its shape. Each row is one outcome, in the order of the changes.
const CHANGE_SQL = `
  SELECT o::text AS outcome, o->>'status' AS status, o->>'sqlstate' AS sqlstate, o->>'message' AS message
    FROM jsonb_array_elements(inventory_sync.sync_push(jsonb_build_array($1::jsonb)))
         WITH ORDINALITY AS r(o, n)
   ORDER BY n`;
const PUSH_SQL = `
  SELECT o::text AS outcome, o->>'status' AS status, o->>'sqlstate' AS sqlstate
    FROM jsonb_array_elements(inventory_sync.sync_push(($1::jsonb)->'changes'))
         WITH ORDINALITY AS r(o, n)
   ORDER BY n`;
const PULL_SQL = 'SELECT inventory_sync.sync_pull($1, $2::integer)::text AS page';

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function isUnavailable(sqlstate) {
  return UNAVAILABLE.has(sqlstate) || (typeof sqlstate === 'string' && sqlstate.startsWith('08'));
}

// The status code of POST /sync/change for one outcome. An `error` outcome is an invalid change
// (422: sending it again cannot succeed): sync_push aborts the whole call, rather than answering
// an outcome, for errors that are not the change's fault (serialization failure, deadlock,
// timeouts), so those reach withRetry as errors of the call.
function outcomeHttp(status) {
  return OUTCOME_HTTP[status] ?? 500;
}

function isConnectionError(err) {
  return NETWORK_ERRORS.has(err.code) ||
    /^Connection terminated|timeout exceeded when trying to connect|not queryable/.test(err.message);
}

// Runs fn, again on a serialization failure or deadlock, at most MAX_ATTEMPTS times in all.
// Each attempt is its own transaction (one statement in autocommit), so a failed one left nothing.
async function withRetry(fn) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof DatabaseError && RETRYABLE.has(err.code)) || attempt >= MAX_ATTEMPTS) throw err;
    }
    await sleep(attempt * 20 + Math.random() * 20);
  }
}

function send(res, status, body) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

// Adds "key": value to a JSON object given as text, keeping the rest of the text as it is.
function withField(objectText, key, value) {
  return `${objectText.slice(0, objectText.lastIndexOf('}'))}, ${JSON.stringify(key)}: ${JSON.stringify(value)}}`;
}

async function readBody(req, limit) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// The body as text, after checking it is a JSON object (and with `required` keys).
async function readJsonObject(req, limit, required = []) {
  const text = await readBody(req, limit);
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'body must be a JSON object');
  }
  for (const key of required) {
    if (!Object.hasOwn(body, key)) throw new HttpError(400, `body must have "${key}"`);
  }
  return text;
}

function createServer({ pool, logger = console, maxBodyBytes = MAX_BODY_BYTES } = {}) {
  const ownPool = !pool;
  if (ownPool) {
    pool = new Pool({ connectionTimeoutMillis: 10000 });
    // An idle connection that breaks (server restart) must not take the process down.
    pool.on('error', (err) => logger.error('idle database connection failed:', err.message));
  }

  // POST /sync/change: one change, answered with its outcome as the database gave it.
  async function change(req, res) {
    const text = await readJsonObject(req, maxBodyBytes);
    const outcome = await withRetry(async () => (await pool.query(CHANGE_SQL, [text])).rows[0]);
    const status = outcomeHttp(outcome.status);
    if (status === 500) {
      logger.error('/sync/change: unknown outcome:', outcome.outcome);
      return send(res, 500, { error: 'internal error' });
    }
    return send(res, status, outcome.outcome);
  }

  // POST /sync/push: a device's queue in one call; each outcome gets the code /sync/change would give.
  async function push(req, res) {
    const text = await readJsonObject(req, maxBodyBytes, ['changes']);
    const { rows } = await withRetry(() => pool.query(PUSH_SQL, [text]));
    const results = rows.map((r) => withField(r.outcome, 'http', outcomeHttp(r.status)));
    return send(res, 200, `{"results": [${results.join(', ')}]}`);
  }

  // GET /sync/pull?since=CURSOR&limit=N
  async function pull(req, res, url) {
    const since = url.searchParams.get('since'); // null: from the beginning
    const limit = url.searchParams.get('limit') ?? '1000';
    if (!/^[+-]?\d+$/.test(limit)) throw new HttpError(400, 'limit must be an integer');
    const { rows } = await withRetry(() => pool.query(PULL_SQL, [since, limit]));
    return send(res, 200, rows[0].page);
  }

  const routes = {
    '/sync/change': { POST: change },
    '/sync/push': { POST: push },
    '/sync/pull': { GET: pull },
  };

  function fail(res, err, path) {
    if (err instanceof HttpError) return send(res, err.status, { error: err.message });
    if (err instanceof DatabaseError) {
      const sqlstate = err.code;
      if (RETRYABLE.has(sqlstate)) return send(res, 503, { error: err.message, sqlstate });
      if (isUnavailable(sqlstate)) {
        logger.error(`${path}: database unavailable: ${sqlstate} ${err.message}`);
        return send(res, 503, { error: 'database unavailable' });
      }
      if (/^(22|42)/.test(sqlstate)) return send(res, 422, { error: err.message, sqlstate });
      if (sqlstate === '55000' && path === '/sync/pull') return send(res, 410, { error: err.message, sqlstate });
    } else if (isConnectionError(err)) {
      logger.error(`${path}: database unreachable: ${err.message}`);
      return send(res, 503, { error: 'database unavailable' });
    }
    logger.error(`${path}:`, err);
    return send(res, 500, { error: 'internal error' });
  }

  const server = http.createServer(async (req, res) => {
    let path = req.url;
    try {
      const url = new URL(req.url, 'http://localhost');
      path = url.pathname;
      const route = Object.hasOwn(routes, path) ? routes[path] : null;
      if (!route) throw new HttpError(404, 'not found');
      const handler = Object.hasOwn(route, req.method) ? route[req.method] : null;
      if (!handler) {
        res.setHeader('Allow', Object.keys(route).join(', '));
        throw new HttpError(405, 'method not allowed');
      }
      await handler(req, res, url);
    } catch (err) {
      if (res.headersSent) {
        logger.error(`${path}:`, err);
        return res.destroy();
      }
      if (err instanceof HttpError && err.status === 413) res.setHeader('Connection', 'close');
      fail(res, err, path);
    }
  });
  if (ownPool) server.on('close', () => pool.end());
  return server;
}

module.exports = { createServer, outcomeHttp };

if (require.main === module) {
  const port = Number(process.env.PORT || 8080);
  const server = createServer();
  server.listen(port, () => console.log(`inventory_sync endpoint listening on port ${port}`));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close());
}
