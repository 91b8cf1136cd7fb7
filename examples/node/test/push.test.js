'use strict';
// POST /sync/push: a device's whole queue in one call, one outcome per change with its "http".
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  upsert, LAPTOP, MOUSE, CABLE, setupDatabase, startServer, request, post, product, conflicts,
} = require('./helpers');

let db;
let app;
let PUSH;

before(async () => {
  db = await setupDatabase();
  app = await startServer();
  PUSH = `${app.url}/sync/push`;
  // The server already has two products.
  await upsert(db, 'products', LAPTOP, { name: 'Laptop', stock: 15 }, '2024-03-01 10:05+00');
  await upsert(db, 'products', MOUSE, { name: 'Mouse', stock: 40 }, '2024-03-01 10:06+00');
});

after(async () => {
  await app?.close();
  await db?.end();
});

// The queue a phone built offline: a stale edit, a delete, a new product, a note for the default
// table, a typo in a column, and a write from a clock a day ahead.
const ahead = new Date(Date.now() + 24 * 3600 * 1000).toISOString();
const queue = [
  { table: 'products', id: LAPTOP, payload: { stock: 8 }, client_ts: '2024-03-01T10:00:00Z', client_id: 'phone-a', mutation_id: 'a-1' },
  { op: 'delete', table: 'products', id: MOUSE, client_ts: '2024-03-01T10:10:00Z', client_id: 'phone-a', mutation_id: 'a-2' },
  { table: 'products', id: CABLE, payload: { name: 'Cable', stock: 100 }, client_ts: '2024-03-01T10:11:00Z', client_id: 'phone-a', mutation_id: 'a-3' },
  { id: 8, payload: { note: 'count shelf B' }, client_ts: '2024-03-01T10:12:00Z', client_id: 'phone-a', mutation_id: 'a-4' },
  { table: 'products', id: CABLE, payload: { stok: 99 }, client_ts: '2024-03-01T10:13:00Z', client_id: 'phone-a', mutation_id: 'a-5' },
  { table: 'products', id: CABLE, payload: { stock: 1 }, client_ts: ahead, client_id: 'phone-a', mutation_id: 'a-6' },
];

test('a batch with mixed outcomes: 200, one result per change in order, each with its http code', async () => {
  const res = await post(PUSH, { changes: queue });
  assert.equal(res.status, 200);
  const { results } = res.body;
  assert.deepEqual(results.map((r) => [r.id, r.status, r.http]), [
    [LAPTOP, 'conflict', 409],
    [MOUSE, 'applied', 200],
    [CABLE, 'applied', 200],
    [8, 'applied', 200],
    [CABLE, 'error', 422],
    [CABLE, 'rejected', 422],
  ]);
  assert.deepEqual(results[0].server_data, {
    id: LAPTOP, name: 'Laptop', stock: 15, updated_at: '2024-03-01T10:05:00+00:00',
  });
  assert.deepEqual(results[1], {
    id: MOUSE, status: 'applied', deleted: true, updated_at: '2024-03-01T10:10:00+00:00', http: 200,
  });
  assert.deepEqual(results[2], {
    id: CABLE, status: 'applied', created: true, updated_at: '2024-03-01T10:11:00+00:00', http: 200,
  });
  assert.deepEqual(results[4], {
    id: CABLE, status: 'error', sqlstate: '42703', http: 422,
    message: 'payload key "stok" is not a column of table public.products',
  });
  assert.equal(results[5].reason, 'clock_skew');

  // What the database holds now.
  assert.equal((await product(db, LAPTOP)).stock, 15);
  assert.equal(await product(db, MOUSE), null);
  assert.deepEqual(await product(db, CABLE), {
    id: CABLE, name: 'Cable', stock: 100, updated_at: '2024-03-01T10:11:00+00:00',
  });
  const { rows } = await db.query('SELECT data FROM inventory_sync.inventory WHERE id = 8');
  assert.deepEqual(rows[0].data, { note: 'count shelf B' });
  assert.deepEqual((await conflicts(db, LAPTOP)).map((c) => c.reason), ['stale']);
  assert.deepEqual((await conflicts(db, CABLE)).map((c) => c.reason), ['clock_skew']);
});

test('the same queue sent again: every recorded answer comes back as duplicate, nothing applied twice', async () => {
  // Another device restocks the cable in between; the retried creation must not undo that.
  await upsert(db, 'products', CABLE, { stock: 250 }, '2024-03-01 10:20+00');
  const res = await post(PUSH, { changes: queue.slice(0, 4) });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body.results.map((r) => [r.status, r.duplicate, r.http]), [
    ['conflict', true, 409],
    ['applied', true, 200],
    ['applied', true, 200],
    ['applied', true, 200],
  ]);
  assert.equal((await product(db, CABLE)).stock, 250);
  assert.equal((await conflicts(db, LAPTOP)).length, 1);
});

test('an empty queue: 200 with no results', async () => {
  const res = await post(PUSH, { changes: [] });
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { results: [] });
});

test('"changes" that is not an array is refused by the database: 422 with SQLSTATE 22023', async () => {
  for (const changes of [{}, 'x', null, 1]) {
    const res = await post(PUSH, { changes });
    assert.equal(res.status, 422, JSON.stringify(changes));
    assert.equal(res.body.sqlstate, '22023');
    assert.match(res.body.error, /changes must be a JSON array/);
  }
});

test('a body without "changes" or not JSON: 400', async () => {
  for (const raw of ['', '{', '[]', '{"change": []}', 'null']) {
    const res = await request(PUSH, { method: 'POST', raw });
    assert.equal(res.status, 400, `body ${JSON.stringify(raw)}`);
    assert.equal(typeof res.body.error, 'string');
  }
});
