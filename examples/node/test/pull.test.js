'use strict';
// GET /sync/pull: the changes after a cursor, and the cursor to pass next time.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { LAPTOP, MOUSE, setupDatabase, startServer, request, post } = require('./helpers');

let db;
let app;
let PULL;
let firstCursor; // from the first full pull, kept for the expired-cursor test

const laptop = (stock, ts) => ({
  table: 'public.products', id: LAPTOP, op: 'upsert', updated_at: ts,
  data: { id: LAPTOP, name: 'Laptop', stock, updated_at: ts },
});

before(async () => {
  db = await setupDatabase();
  app = await startServer();
  PULL = `${app.url}/sync/pull`;
  const push = await post(`${app.url}/sync/push`, {
    changes: [
      { table: 'products', id: LAPTOP, payload: { name: 'Laptop', stock: 15 }, client_ts: '2024-03-01T10:05:00Z' },
      { table: 'products', id: MOUSE, payload: { name: 'Mouse', stock: 40 }, client_ts: '2024-03-01T10:06:00Z' },
      { id: 7, payload: { note: 'restock Friday' }, client_ts: '2024-03-01T10:07:00Z' },
    ],
  });
  assert.deepEqual(push.body.results.map((r) => r.http), [200, 200, 200]);
});

after(async () => {
  await app?.close();
  await db?.end();
});

test('a first pull (no since) answers every change and a cursor', async () => {
  const res = await request(PULL);
  assert.equal(res.status, 200);
  assert.equal(res.body.has_more, false);
  assert.equal(typeof res.body.cursor, 'string');
  assert.ok(res.body.cursor.length > 0);
  const byId = Object.fromEntries(res.body.changes.map((c) => [c.id, c]));
  assert.equal(res.body.changes.length, 3);
  assert.deepEqual(byId[LAPTOP], laptop(15, '2024-03-01T10:05:00+00:00'));
  assert.deepEqual(byId[MOUSE].data, { id: MOUSE, name: 'Mouse', stock: 40, updated_at: '2024-03-01T10:06:00+00:00' });
  assert.deepEqual(byId[7], {
    table: 'inventory_sync.inventory', id: 7, op: 'upsert', updated_at: '2024-03-01T10:07:00+00:00',
    data: { note: 'restock Friday' },
  });
  firstCursor = res.body.cursor;

  // Up to date: nothing more, the cursor stays.
  const again = await request(`${PULL}?since=${encodeURIComponent(firstCursor)}`);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body, { changes: [], cursor: firstCursor, has_more: false });
});

test('pages: limit=2 then the cursor for the rest', async () => {
  const page1 = await request(`${PULL}?limit=2`);
  assert.equal(page1.status, 200);
  assert.equal(page1.body.changes.length, 2);
  assert.equal(page1.body.has_more, true);
  const page2 = await request(`${PULL}?limit=2&since=${encodeURIComponent(page1.body.cursor)}`);
  assert.equal(page2.status, 200);
  assert.equal(page2.body.changes.length, 1);
  assert.equal(page2.body.has_more, false);
  const ids = [...page1.body.changes, ...page2.body.changes].map((c) => c.id).sort();
  assert.deepEqual(ids, [7, LAPTOP, MOUSE].sort());
  assert.equal(page2.body.cursor, firstCursor);
});

test('a pull with the cursor answers only what changed since: an edit and a delete', async () => {
  const edit = await post(`${app.url}/sync/change`, {
    table: 'products', id: LAPTOP, payload: { stock: 14 }, client_ts: '2024-03-01T10:20:00Z',
  });
  assert.equal(edit.status, 200);
  const del = await post(`${app.url}/sync/change`, {
    op: 'delete', table: 'products', id: MOUSE, client_ts: '2024-03-01T10:21:00Z',
  });
  assert.equal(del.status, 200);
  assert.equal(del.body.deleted, true);

  const res = await request(`${PULL}?since=${encodeURIComponent(firstCursor)}`);
  assert.equal(res.status, 200);
  assert.equal(res.body.has_more, false);
  assert.deepEqual(res.body.changes, [
    laptop(14, '2024-03-01T10:20:00+00:00'),
    { table: 'public.products', id: MOUSE, op: 'delete', data: null, updated_at: '2024-03-01T10:21:00+00:00' },
  ]);
  assert.notEqual(res.body.cursor, firstCursor);
});

test('a malformed cursor: 422 with SQLSTATE 22023', async () => {
  for (const since of ['not-a-cursor', '']) {
    const res = await request(`${PULL}?since=${encodeURIComponent(since)}`);
    assert.equal(res.status, 422, `since ${JSON.stringify(since)}`);
    assert.deepEqual(res.body, { error: 'invalid cursor', sqlstate: '22023' });
  }
});

test('limit out of range: 422 from the database; not an integer: 400', async () => {
  for (const limit of ['0', '100001', '-5']) {
    const res = await request(`${PULL}?limit=${limit}`);
    assert.equal(res.status, 422, `limit ${limit}`);
    assert.deepEqual(res.body, { error: 'lim must be between 1 and 100000', sqlstate: '22023' });
  }
  const huge = await request(`${PULL}?limit=99999999999`);
  assert.equal(huge.status, 422);
  assert.equal(huge.body.sqlstate, '22003');
  for (const limit of ['ten', '1.5', '']) {
    const res = await request(`${PULL}?limit=${limit}`);
    assert.equal(res.status, 400, `limit ${JSON.stringify(limit)}`);
    assert.equal(res.body.error, 'limit must be an integer');
  }
});

test('a cursor older than the last tombstone purge: 410 with SQLSTATE 55000; from the start works', async () => {
  // The mouse's delete is made 40 days old and purged; the first cursor predates the purge.
  await db.query(`UPDATE inventory_sync.changes_uuid SET changed_at = changed_at - interval '40 days' WHERE op = 'delete'`);
  const { rows } = await db.query(`SELECT inventory_sync.purge_tombstones('30 days') AS n`);
  assert.equal(Number(rows[0].n), 1);

  const res = await request(`${PULL}?since=${encodeURIComponent(firstCursor)}`);
  assert.equal(res.status, 410);
  assert.deepEqual(res.body, { error: 'cursor is older than the last tombstone purge', sqlstate: '55000' });

  const fresh = await request(PULL);
  assert.equal(fresh.status, 200);
  assert.deepEqual(fresh.body.changes.map((c) => c.id).sort(), [7, LAPTOP].sort());
});

test('POST on /sync/pull: 405 with Allow: GET', async () => {
  const res = await request(PULL, { method: 'POST', body: {} });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
});
