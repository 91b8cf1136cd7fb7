'use strict';
// POST /sync/change: one change, answered with its outcome and the status code a device acts on.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  LAPTOP, MOUSE, setupDatabase, startServer, request, post, product, conflicts,
} = require('./helpers');

let db;
let app;
let CHANGE;

before(async () => {
  db = await setupDatabase();
  app = await startServer();
  CHANGE = `${app.url}/sync/change`;
});

after(async () => {
  await app?.close();
  await db?.end();
});

test('a new row is applied: 200, created, and stored with client_ts', async () => {
  const res = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: { name: 'Laptop', stock: 15 },
    client_ts: '2024-03-01T10:05:00Z',
  });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, {
    id: LAPTOP, status: 'applied', created: true, updated_at: '2024-03-01T10:05:00+00:00',
  });
  assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
  assert.deepEqual(await product(db, LAPTOP), {
    id: LAPTOP, name: 'Laptop', stock: 15, updated_at: '2024-03-01T10:05:00+00:00',
  });
});

test('an older write is a conflict: 409 with the stored row as server_data, and journaled', async () => {
  const res = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: { stock: 8 },
    client_ts: '2024-03-01T10:00:00Z', client_id: 'phone-a', mutation_id: 'a-1',
  });
  assert.equal(res.status, 409);
  assert.equal(res.body.status, 'conflict');
  assert.equal(res.body.id, LAPTOP);
  const stored = await product(db, LAPTOP);
  assert.deepEqual(stored, { id: LAPTOP, name: 'Laptop', stock: 15, updated_at: '2024-03-01T10:05:00+00:00' });
  assert.deepEqual(res.body.server_data, stored);

  const journal = await conflicts(db, LAPTOP);
  assert.equal(journal.length, 1);
  assert.equal(journal[0].table_name, 'public.products');
  assert.equal(journal[0].reason, 'stale');
  assert.equal(journal[0].op, 'upsert');
  assert.deepEqual(journal[0].client_payload, { stock: 8 });
  assert.equal(journal[0].client_ts.toISOString(), '2024-03-01T10:00:00.000Z');
  assert.equal(journal[0].client_id, 'phone-a');
  assert.equal(journal[0].mutation_id, 'a-1');
  assert.deepEqual(journal[0].server_data, stored);
});

test('a client clock a day ahead is rejected: 422, journaled as clock_skew, row unchanged', async () => {
  const ahead = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
  const res = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: { stock: 1 }, client_ts: ahead,
  });
  assert.equal(res.status, 422);
  assert.equal(res.body.status, 'rejected');
  assert.equal(res.body.reason, 'clock_skew');
  assert.equal(res.body.max_clock_skew_seconds, 300);
  assert.ok(res.body.ahead_by_seconds > 86000 && res.body.ahead_by_seconds <= 86400,
    `ahead_by_seconds ${res.body.ahead_by_seconds}`);
  assert.equal(new Date(res.body.client_ts).getTime(), new Date(ahead).getTime());
  assert.ok(Math.abs(new Date(res.body.server_time).getTime() - Date.now()) < 60000);

  assert.equal((await product(db, LAPTOP)).stock, 15);
  const journal = await conflicts(db, LAPTOP);
  assert.deepEqual(journal.map((j) => j.reason), ['stale', 'clock_skew']);
});

test('an invalid change is an error: 422 with its SQLSTATE, nothing written', async () => {
  const before = await product(db, LAPTOP);
  const unknownColumn = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: { colour: 'red' }, client_ts: '2024-03-01T11:00:00Z',
  });
  assert.equal(unknownColumn.status, 422);
  assert.deepEqual(unknownColumn.body, {
    id: LAPTOP, status: 'error', sqlstate: '42703',
    message: 'payload key "colour" is not a column of table public.products',
  });

  const badValue = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: { stock: 'lots' }, client_ts: '2024-03-01T11:00:00Z',
  });
  assert.equal(badValue.status, 422);
  assert.equal(badValue.body.status, 'error');
  assert.equal(badValue.body.sqlstate, '22P02');
  assert.match(badValue.body.message, /invalid value for column "stock"/);

  const unknownTable = await post(CHANGE, {
    table: 'no_such_table', id: 1, payload: {}, client_ts: '2024-03-01T11:00:00Z',
  });
  assert.equal(unknownTable.status, 422);
  assert.equal(unknownTable.body.status, 'error');
  assert.equal(unknownTable.body.sqlstate, '42P01');

  const unknownKey = await post(CHANGE, {
    table: 'products', id: LAPTOP, payload: {}, client_ts: '2024-03-01T11:00:00Z', colour: 'red',
  });
  assert.equal(unknownKey.status, 422);
  assert.equal(unknownKey.body.sqlstate, '22023');

  assert.deepEqual(await product(db, LAPTOP), before);
  assert.equal((await conflicts(db, LAPTOP)).length, 2);
});

test('a body that is not JSON or not a change object: 400, nothing written', async () => {
  for (const raw of ['', '{"table": "products",', 'not json', '[]', '[{"id": 1}]', '"x"', '42', 'null']) {
    const res = await request(CHANGE, { method: 'POST', raw });
    assert.equal(res.status, 400, `body ${JSON.stringify(raw)}`);
    assert.equal(typeof res.body.error, 'string');
  }
  const { rows } = await db.query('SELECT count(*)::int AS n FROM inventory_sync.inventory');
  assert.equal(rows[0].n, 0);
});

test('a retry with the same client_id and mutation_id is answered duplicate and applied once', async () => {
  const change = {
    table: 'products', id: MOUSE, payload: { name: 'Mouse', stock: 40 },
    client_ts: '2024-03-01T10:06:00Z', client_id: 'phone-b', mutation_id: 'b-7',
  };
  const first = await post(CHANGE, change);
  assert.equal(first.status, 200);
  assert.deepEqual(first.body, { id: MOUSE, status: 'applied', created: true, updated_at: '2024-03-01T10:06:00+00:00' });

  // Meanwhile another device sells 5.
  const sold = await post(CHANGE, {
    table: 'products', id: MOUSE, payload: { stock: 35 }, client_ts: '2024-03-01T10:07:00Z',
  });
  assert.equal(sold.status, 200);

  // The phone lost the first answer and sends its change again: the first answer comes back,
  // and the stock is not set back to 40.
  const retry = await post(CHANGE, change);
  assert.equal(retry.status, 200);
  assert.deepEqual(retry.body, { ...first.body, duplicate: true });
  assert.deepEqual(await product(db, MOUSE), {
    id: MOUSE, name: 'Mouse', stock: 35, updated_at: '2024-03-01T10:07:00+00:00',
  });
  const { rows } = await db.query(
    `SELECT count(*)::int AS n FROM (SELECT client_id, mutation_id FROM inventory_sync.mutations UNION ALL SELECT client_id, mutation_id FROM inventory_sync.mutations_uuid) m WHERE client_id = 'phone-b' AND mutation_id = 'b-7'`);
  assert.equal(rows[0].n, 1);
  assert.equal((await conflicts(db, MOUSE)).length, 0);
});

test('without "table" the change is for the default table', async () => {
  const res = await post(CHANGE, { id: 7, payload: { note: 'restock Friday', qty: 3 }, client_ts: '2024-03-01T10:07:00Z' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { id: 7, status: 'applied', created: true, updated_at: '2024-03-01T10:07:00+00:00' });

  const older = await post(CHANGE, { id: 7, payload: { qty: 1 }, client_ts: '2024-03-01T09:00:00Z' });
  assert.equal(older.status, 409);
  assert.deepEqual(older.body.server_data, {
    id: 7, note: 'restock Friday', qty: 3, updated_at: '2024-03-01T10:07:00+00:00',
  });

  const { rows } = await db.query('SELECT data, updated_at FROM inventory_sync.inventory WHERE id = 7');
  assert.deepEqual(rows[0].data, { note: 'restock Friday', qty: 3 });
  assert.equal(rows[0].updated_at.toISOString(), '2024-03-01T10:07:00.000Z');
});

test('numbers go through exactly: a bigint id beyond 2^53 and 999.00', async () => {
  // JavaScript devices send such ids as strings; the answer carries the exact number.
  const res = await post(CHANGE, { id: '9007199254740993', payload: { price: 999 }, client_ts: '2024-03-01T10:08:00Z' });
  assert.equal(res.status, 200);
  assert.match(res.text, /"id": 9007199254740993,/);
  const raw = await request(CHANGE, {
    method: 'POST',
    raw: '{"id": 9007199254740995, "payload": {"price": 999.00}, "client_ts": "2024-03-01T10:08:00Z"}',
  });
  assert.equal(raw.status, 200);
  assert.match(raw.text, /"id": 9007199254740995,/);
  const { rows } = await db.query(
    `SELECT id::text, data::text FROM inventory_sync.inventory WHERE id > 9007199254740992 ORDER BY id`);
  assert.deepEqual(rows, [
    { id: '9007199254740993', data: '{"price": 999}' },
    { id: '9007199254740995', data: '{"price": 999.00}' },
  ]);
  // And so does the pull.
  const pull = await request(`${app.url}/sync/pull`);
  assert.equal(pull.status, 200);
  assert.match(pull.text, /\{"id": 9007199254740995, "op": "upsert", "data": \{"price": 999\.00\}/);
});

test('an unknown path is 404, a wrong method 405 with Allow', async () => {
  const missing = await request(`${app.url}/sync/nothing`);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error, 'not found');
  const wrong = await request(CHANGE);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  assert.equal(typeof wrong.body.error, 'string');
});
