"""A scratch PostgreSQL cluster (the major of INVENTORY_SYNC_PG_BIN, default 15) of a test's own: the fault tests crash theirs, the backup tests restore into one.

Started and restarted with scripts/common.sh (as the postgres user, in
$INVENTORY_SYNC_WORK/NAME, default /tmp/inventory_sync/NAME); crashed with `pg_ctl stop -m
immediate` or by SIGKILL of one backend, after which the postmaster terminates every backend and
runs crash recovery before it accepts connections again."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]
WORK = Path(os.environ.get("INVENTORY_SYNC_WORK", "/tmp/inventory_sync"))
PG_BIN = Path(os.environ.get("INVENTORY_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))


class Cluster:
    def __init__(self, name, port, listen=""):
        self.name = name
        self.port = int(port)
        # listen_addresses: none (the socket only) unless given, e.g. "localhost" for a cluster
        # other servers connect to.
        self.listen = listen
        self.dir = WORK / name
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.dsn = f"host={self.dir} port={self.port} user=postgres"

    # -- life cycle ---------------------------------------------------------------------------

    def _common(self, commands, env=None):
        subprocess.run(
            ["bash", "-c", f"source {REPO}/scripts/common.sh; {commands}"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=180,
            env={**os.environ, **(env or {})},
        )

    def create(self):
        """A fresh cluster: removes any earlier one of this name, then starts it."""
        self._common(f"remove_cluster {self.name}; start_cluster {self.name} {self.port} '{self.listen}'")

    def start(self, env=None):
        """Start the (stopped or crashed) cluster, or restart the running one; returns once
        recovery is done. `env`: extra environment variables for the server."""
        self._common(f"start_cluster {self.name} {self.port} '{self.listen}'", env)

    def start_with(self, env):
        """Restart the cluster with `env` (name -> value) in the server's environment, which
        `start` cannot do for RUST_BACKTRACE and RUST_LIB_BACKTRACE: scripts/common.sh starts
        every server without them, and this is how a test shows what they would do. Neither is
        passed on from this process: only what `env` names."""
        self.stop()
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "env", "-u", "RUST_BACKTRACE", "-u", "RUST_LIB_BACKTRACE",
             *(f"{name}={value}" for name, value in env.items()),
             str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
             "-o", f"-p {self.port} -k {self.dir} -c listen_addresses='' -c fsync=off", "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=180,
        )

    def configure(self, **settings):
        """Add settings to postgresql.conf (they take effect at the next start)."""
        lines = "".join(f"{name} = '{value}'\n" for name, value in settings.items())
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(lines)

    def server_environment(self):
        """The postmaster's environment (name -> value), as the kernel holds it."""
        pid = int(Path(self.data / "postmaster.pid").read_text().split()[0])
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return dict(item.decode("utf-8", "replace").partition("=")[::2] for item in raw.split(b"\0") if item)

    def stop(self):
        self._common(f"stop_cluster {self.name}")

    def remove(self):
        """Stop the cluster and delete its directory."""
        self._common(f"remove_cluster {self.name}")

    def crash(self):
        """Stop the whole server like a power cut of the processes: no checkpoint, no goodbye
        to clients. Recovery replays the WAL on the next start."""
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
             "stop", "-m", "immediate"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )

    def log_size(self):
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset):
        with open(self.log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def kill_backend(self, pid, timeout=90):
        """SIGKILL one backend, then wait for the postmaster's crash recovery (it terminates
        every other backend, replays the WAL and accepts connections again)."""
        offset = self.log_size()
        os.kill(pid, signal.SIGKILL)
        return self.wait_recovered(offset, timeout)

    def wait_recovered(self, offset, timeout=90):
        """Wait until the server log, from `offset` on, shows a crash recovery finished, and the
        server accepts connections again; answers the log text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_since(offset)
            # The "ready" line that follows the reinitialization, not an earlier one.
            done = re.search(r"all server processes terminated; reinitializing.*"
                             r"database system is ready to accept connections", text, re.S)
            if done:
                break
            assert time.monotonic() < deadline, f"no crash recovery:\n{text}"
            time.sleep(0.05)
        self.wait_ready(timeout)
        return text

    def wait_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect("postgres") as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the cluster did not come back"
                time.sleep(0.1)

    # -- connections --------------------------------------------------------------------------

    def connect(self, dbname, **kw):
        """An autocommit connection to database `dbname`."""
        kw.setdefault("autocommit", True)
        return psycopg.connect(f"{self.dsn} dbname={dbname}", **kw)

    def fresh_database(self, name):
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
        with self.connect("postgres") as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
        with self.connect(name) as conn:
            conn.execute("CREATE EXTENSION inventory_sync")
        return name
