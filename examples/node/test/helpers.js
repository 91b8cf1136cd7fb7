'use strict';
// Shared by the test files: a fresh extension with a tracked products table, the server started
// in-process on a free port, and a direct database connection to check what was stored.
const assert = require('node:assert/strict');
const { once } = require('node:events');
const { Pool } = require('pg');
const { createServer } = require('../server');

// The expected answers spell timestamps in UTC, and the database renders them in the session's
// TimeZone: every connection the tests open (the server's too) reads PGOPTIONS.
process.env.PGOPTIONS = [process.env.PGOPTIONS, '-c TimeZone=UTC'].filter(Boolean).join(' ');

const SETUP_SQL = `
  DROP EXTENSION IF EXISTS inventory_sync CASCADE;
  DROP TABLE IF EXISTS public.products;
  CREATE EXTENSION inventory_sync;
  CREATE TABLE public.products (
      id         uuid PRIMARY KEY,
      name       text NOT NULL,
      stock      integer NOT NULL DEFAULT 0,
      updated_at timestamptz NOT NULL
  );
  SELECT inventory_sync.track('public.products');`;

const LAPTOP = '11111111-1111-1111-1111-111111111111';
const MOUSE = '22222222-2222-2222-2222-222222222222';
const CABLE = '33333333-3333-3333-3333-333333333333';

const quietLogger = { error() {}, log() {} };

// Resets the database in PGDATABASE; answers a pool on it for the test's own checks.
async function setupDatabase() {
  const db = new Pool({ max: 2 });
  await db.query(SETUP_SQL);
  return db;
}

// Starts the server on 127.0.0.1 and a free port; answers { server, url, close }.
async function startServer(options = {}) {
  const server = createServer({ logger: quietLogger, ...options });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${server.address().port}`;
  const close = async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  };
  return { server, url, close };
}

// An HTTP request through fetch; answers { status, body (parsed), text (raw) }.
async function request(url, { method = 'GET', body, raw } = {}) {
  const init = { method };
  if (raw !== undefined) init.body = raw;
  else if (body !== undefined) init.body = JSON.stringify(body);
  if (init.body !== undefined) init.headers = { 'Content-Type': 'application/json' };
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? unversioned(JSON.parse(text)) : undefined };
}

// An answer without its row versions (each is the server's clock when the row was written, so
// it differs from run to run): each is checked to be one (16 hex digits, or null) and left out.
function unversioned(value) {
  if (Array.isArray(value)) return value.map(unversioned);
  if (value === null || typeof value !== 'object') return value;
  const out = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'version' && (v === null || typeof v === 'string')) {
      assert.ok(v === null || /^[0-9a-f]{16}$/.test(v), `not a version: ${v}`);
    } else {
      out[k] = unversioned(v);
    }
  }
  return out;
}

const post = (url, body) => request(url, { method: 'POST', body });

async function product(db, id) {
  const { rows } = await db.query(
    'SELECT row_to_json(p)::jsonb AS row FROM public.products p WHERE id = $1', [id]);
  return rows[0]?.row ?? null;
}

async function conflicts(db, rowId) {
  const { rows } = await db.query(
    `SELECT table_name, reason, op, client_payload, client_ts, client_id, mutation_id, server_data
       FROM inventory_sync.conflicts WHERE row_id = $1 ORDER BY conflict_id`, [rowId]);
  return rows;
}

// A write straight through SQL, as another device's backend would make it.
async function upsert(db, table, id, payload, clientTs) {
  const { rows } = await db.query(
    'SELECT inventory_sync.sync_upsert_in($1::regclass, $2, $3::jsonb, $4::timestamptz) AS outcome',
    [table, id, JSON.stringify(payload), clientTs]);
  return rows[0].outcome;
}

module.exports = {
  upsert, LAPTOP, MOUSE, CABLE, quietLogger, setupDatabase, startServer, request, post, product, conflicts,
};
