'use strict';
// What the server answers when the database cannot take the call: retries of serialization
// failures and deadlocks, then 503; read-only or unreachable, 503; anything else, 500 without details.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { setTimeout: sleep } = require('node:timers/promises');
const { Pool, DatabaseError } = require('pg');
const { LAPTOP, MOUSE, CABLE, setupDatabase, startServer, request, post, product, upsert } = require('./helpers');

let db;

// A trigger that fails like a busy database would: a 'flaky' product fails its first two
// writes with a serialization failure, a 'doomed' one always with a deadlock. The sequence
// counts the attempts (sequences are not rolled back with the failed subtransaction).
const FLAKY_SQL = `
  CREATE SEQUENCE public.attempts;
  CREATE FUNCTION public.flaky() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    IF NEW.name = 'flaky' AND nextval('public.attempts') <= 2 THEN
      RAISE EXCEPTION 'could not serialize access due to concurrent update' USING ERRCODE = '40001';
    END IF;
    IF NEW.name = 'doomed' THEN
      PERFORM nextval('public.attempts');
      RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01';
    END IF;
    RETURN NEW;
  END $$;
  CREATE TRIGGER flaky BEFORE INSERT OR UPDATE ON public.products
    FOR EACH ROW EXECUTE FUNCTION public.flaky();`;

async function attempts() {
  const { rows } = await db.query('SELECT last_value, is_called FROM public.attempts');
  return rows[0].is_called ? Number(rows[0].last_value) : 0;
}

before(async () => {
  db = await setupDatabase();
  await db.query(`DROP SEQUENCE IF EXISTS public.attempts; DROP FUNCTION IF EXISTS public.flaky() CASCADE; ${FLAKY_SQL}`);
});

after(async () => {
  await db?.query('DROP TABLE IF EXISTS public.products; DROP FUNCTION IF EXISTS public.flaky(); DROP SEQUENCE IF EXISTS public.attempts');
  await db?.end();
});

test('a serialization failure inside a change is retried: applied on the third attempt', async () => {
  await db.query('ALTER SEQUENCE public.attempts RESTART');
  const app = await startServer();
  try {
    const res = await post(`${app.url}/sync/change`, {
      table: 'products', id: LAPTOP, payload: { name: 'flaky', stock: 3 }, client_ts: '2024-03-01T10:00:00Z',
    });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'applied');
    assert.equal(res.body.created, true);
    assert.equal(await attempts(), 3);
    assert.equal((await product(db, LAPTOP)).stock, 3);
  } finally {
    await app.close();
  }
});

test('a deadlock on every attempt: three attempts, then 503 with the SQLSTATE, nothing written', async () => {
  await db.query('ALTER SEQUENCE public.attempts RESTART');
  const app = await startServer();
  try {
    const res = await post(`${app.url}/sync/change`, {
      table: 'products', id: MOUSE, payload: { name: 'doomed' }, client_ts: '2024-03-01T10:00:00Z',
    });
    assert.equal(res.status, 503);
    assert.deepEqual(res.body, { error: 'deadlock detected', sqlstate: '40P01' });
    assert.equal(await attempts(), 3);
    assert.equal(await product(db, MOUSE), null);

    // In a batch, the deadlock aborts the whole sync_push call (it is not the change's fault):
    // the batch is retried as a whole, then answered 503, and none of it is written.
    await db.query('ALTER SEQUENCE public.attempts RESTART');
    const batch = await post(`${app.url}/sync/push`, {
      changes: [
        { table: 'products', id: MOUSE, payload: { name: 'doomed' }, client_ts: '2024-03-01T10:00:00Z' },
        { table: 'products', id: CABLE, payload: { name: 'Cable' }, client_ts: '2024-03-01T10:00:00Z' },
      ],
    });
    assert.equal(batch.status, 503);
    assert.deepEqual(batch.body, { error: 'deadlock detected', sqlstate: '40P01' });
    assert.equal(await attempts(), 3);
    assert.equal(await product(db, CABLE), null);
  } finally {
    await app.close();
  }
});

test('a real concurrent update at SERIALIZABLE: the change is retried and applied', async () => {
  await upsert(db, 'products', LAPTOP, { name: 'Laptop', stock: 15 }, '2024-03-01T10:05:00Z');
  const pool = new Pool({ max: 1, options: '-c default_transaction_isolation=serializable' });
  const counted = { calls: 0, query(...args) { counted.calls += 1; return pool.query(...args); } };
  const app = await startServer({ pool: counted });
  const blocker = await db.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('UPDATE public.products SET stock = stock + 1 WHERE id = $1', [LAPTOP]);
    const pending = post(`${app.url}/sync/change`, {
      table: 'products', id: LAPTOP, payload: { stock: 9 }, client_ts: '2024-03-01T11:00:00Z',
    });
    // Wait until the server's call waits for the row lock, then commit under it.
    for (let i = 0; ; i++) {
      const { rows } = await db.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE '%sync_push%'`);
      if (rows[0].n > 0) break;
      assert.ok(i < 500, 'the server never waited for the row lock');
      await sleep(10);
    }
    await blocker.query('COMMIT');
    const res = await pending;
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.status, 'applied');
    assert.equal((await product(db, LAPTOP)).stock, 9);
    assert.equal(counted.calls, 2); // the first call's change failed with 40001
  } finally {
    blocker.release();
    await app.close();
    await pool.end();
  }
});

// A pool that fails its first `failures` queries the way PostgreSQL does, then passes through.
function failingPool(real, sqlstate, failures) {
  const wrapper = {
    calls: 0,
    async query(...args) {
      wrapper.calls += 1;
      if (wrapper.calls <= failures) {
        throw Object.assign(new DatabaseError('could not serialize access due to read/write dependencies among transactions', 0, 'error'), { code: sqlstate });
      }
      return real.query(...args);
    },
  };
  return wrapper;
}

test('a call that fails with 40001 is retried (3 attempts), then 503', async () => {
  const twice = failingPool(db, '40001', 2);
  let app = await startServer({ pool: twice });
  try {
    const res = await request(`${app.url}/sync/pull`);
    assert.equal(res.status, 200);
    assert.ok(Array.isArray(res.body.changes));
    assert.equal(twice.calls, 3);
  } finally {
    await app.close();
  }
  const always = failingPool(db, '40001', Infinity);
  app = await startServer({ pool: always });
  try {
    const res = await post(`${app.url}/sync/push`, { changes: [] });
    assert.equal(res.status, 503);
    assert.equal(res.body.sqlstate, '40001');
    assert.equal(typeof res.body.error, 'string');
    assert.equal(always.calls, 3);
  } finally {
    await app.close();
  }
});

test('a read-only database: writes answer 503, pulls still work', async () => {
  const pool = new Pool({ max: 1, options: '-c default_transaction_read_only=on' });
  const app = await startServer({ pool });
  try {
    const change = await post(`${app.url}/sync/change`, {
      table: 'products', id: LAPTOP, payload: { stock: 1 }, client_ts: '2024-03-01T12:00:00Z',
    });
    assert.equal(change.status, 503);
    assert.deepEqual(change.body, { error: 'database unavailable' });
    const push = await post(`${app.url}/sync/push`, { changes: [] });
    assert.equal(push.status, 503);
    const pull = await request(`${app.url}/sync/pull`);
    assert.equal(pull.status, 200);
    assert.equal((await product(db, LAPTOP)).stock, 9);
  } finally {
    await app.close();
    await pool.end();
  }
});

test('an unreachable database: 503 on every endpoint', async () => {
  for (const config of [{ host: '/nonexistent/socket/dir' }, { host: '127.0.0.1', port: 1 }]) {
    const pool = new Pool({ ...config, connectionTimeoutMillis: 5000 });
    pool.on('error', () => {});
    const app = await startServer({ pool });
    try {
      const answers = await Promise.all([
        post(`${app.url}/sync/change`, { id: 1, payload: {}, client_ts: '2024-03-01T12:00:00Z' }),
        post(`${app.url}/sync/push`, { changes: [] }),
        request(`${app.url}/sync/pull`),
      ]);
      for (const res of answers) {
        assert.equal(res.status, 503, JSON.stringify(config));
        assert.deepEqual(res.body, { error: 'database unavailable' });
      }
    } finally {
      await app.close();
      await pool.end();
    }
  }
});

test('any other database error: 500 "internal error", the details only in the log', async () => {
  // A lock timeout (55P03): the pull waits for a table another session holds exclusively.
  const pool = new Pool({ max: 1, options: '-c lock_timeout=100' });
  const logged = [];
  const app = await startServer({ pool, logger: { error: (...args) => logged.push(args.join(' ')) } });
  const locker = await db.connect();
  try {
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE public.products IN ACCESS EXCLUSIVE MODE');
    const res = await request(`${app.url}/sync/pull`);
    assert.equal(res.status, 500);
    assert.equal(res.text, '{"error":"internal error"}');
    assert.equal(logged.length, 1);
    assert.match(logged[0], /lock timeout/);
  } finally {
    await locker.query('ROLLBACK');
    locker.release();
    await app.close();
    await pool.end();
  }
});

test('a body larger than the limit: 413', async () => {
  const app = await startServer({ maxBodyBytes: 1024 });
  try {
    const res = await request(`${app.url}/sync/push`, {
      method: 'POST', raw: JSON.stringify({ changes: [{ id: 1, payload: { note: 'x'.repeat(2000) }, client_ts: '2024-03-01T12:00:00Z' }] }),
    });
    assert.equal(res.status, 413);
    assert.deepEqual(res.body, { error: 'body too large' });
  } finally {
    await app.close();
  }
});
