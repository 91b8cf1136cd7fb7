"""Races with real, separate connections: writers released together from a barrier.

Each writer is one connection, driven by a thread of its own. The coordinator holds an advisory
lock; every writer's statement takes the same lock (shared) in a FROM subquery, which runs before
the statement's select list, so each writer is parked inside the very statement that writes, its
write ready to go. Once all of them wait on the lock, the coordinator lets go and they run at the
same moment: no writer can get its whole call done before another one starts.

    with Barrier(db, key=424242, writers=4) as barrier:
        results = barrier.fire(coordinator, [("SELECT inventory_sync.sync_upsert(%s, %s, %s)",
                                              (1, Jsonb({...}), ts)), ...])

Each result is ("ok", the statement's single value, retries) or ("error", "SQLSTATE: message",
retries). A serialization failure (40001, as REPEATABLE READ raises) is retried: that is the
documented contract, and `retries` counts them."""

import threading
import time

import psycopg

from harness import connect

# How long the writers may take to reach the barrier before the round is declared stuck.
PARK_SECONDS = 20


class Writer(threading.Thread):
    """One connection; runs one statement each time it is released, parked at the barrier
    inside that statement."""

    def __init__(self, dbname, key, settings=None):
        super().__init__(daemon=True)
        self.conn = connect(dbname)
        for name, value in (settings or {}).items():
            self.conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
        # The FROM subquery runs first: every writer is parked on the lock, its write ready.
        self.barrier = f" FROM (SELECT pg_advisory_xact_lock_shared({int(key)})) AS barrier"
        self.job = None
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.result = None

    def run(self):
        while True:
            self.go.acquire()
            if self.job is None:
                return
            self.result = None
            try:
                sql, params = self.job
                retries = 0
                while True:
                    try:
                        self.result = ("ok", self.conn.execute(sql + self.barrier, params).fetchone()[0], retries)
                        break
                    except psycopg.errors.SerializationFailure:
                        retries += 1  # the contract at REPEATABLE READ: retry the whole call
                    except psycopg.Error as e:
                        self.result = ("error", f"{e.sqlstate}: {e}", retries)
                        break
            finally:
                # Whatever happened, the coordinator is not left waiting (a harness bug leaves
                # result None and the thread's exception to pytest).
                self.done.release()


class Barrier:
    """`writers` writers on database `dbname`, each with the session `settings` (name → value,
    e.g. {"default_transaction_isolation": "repeatable read"}), released together on the
    advisory lock `key`."""

    def __init__(self, dbname, key, writers, settings=None):
        self.key = int(key)
        assert 0 <= self.key < 2**32, "pg_locks shows such a key as objid"
        self.writers = []
        try:
            for _ in range(writers):
                self.writers.append(Writer(dbname, self.key, settings))
        except BaseException:
            self.close()
            raise
        for w in self.writers:
            w.start()

    def fire(self, coordinator, statements):
        """Hand one statement (sql, params) to each of the first len(statements) writers: a
        SELECT of one value with no FROM clause (the barrier is its FROM). Wait until every one
        of them is parked at the barrier, release them together, and answer their results."""
        assert len(statements) <= len(self.writers)
        writers = self.writers[: len(statements)]
        coordinator.execute("SELECT pg_advisory_lock(%s)", (self.key,))
        for w, statement in zip(writers, statements):
            w.job = statement
            w.go.release()
        deadline = time.monotonic() + PARK_SECONDS
        while coordinator.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid = %s",
            (self.key,),
        ).fetchone()[0] < len(writers):
            assert time.monotonic() < deadline, "writers never reached the barrier"
            time.sleep(0.001)
        coordinator.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        for w in writers:
            w.done.acquire()
        return [w.result for w in writers]

    def close(self):
        """Stop the writers and close their connections."""
        for w in self.writers:
            w.job = None
            if w.is_alive():
                w.go.release()
        for w in self.writers:
            if w.is_alive():
                w.join(5)
            w.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def slow_writes(conn, schema, tables):
    """Widen each race window: a trigger that sleeps 3 ms on every insert and update of each of
    `tables` (its function made in `schema`), so the writers released together overlap inside
    their writes."""
    conn.execute(
        f"""CREATE FUNCTION {schema}.slow() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END $$"""
    )
    for table in tables:
        conn.execute(
            f"""CREATE TRIGGER slow_writes BEFORE INSERT OR UPDATE ON {table}
                FOR EACH ROW EXECUTE FUNCTION {schema}.slow()"""
        )
