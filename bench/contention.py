"""The contention run: how the four peers hold up as writes crowd onto a few hot rows.

The bare statement, the PL/pgSQL function, the application pattern and sync_upsert (the pgbench
scripts of bench/scripts.py), every write winning, on a table of 10,000 rows: for each share of
writes on the ten hot rows (ids 1 to 10; the other writes uniform over the table) and each number
of clients, the median tx/s of --runs runs, the peers interleaved run by run as in bench.py.
Each run lasts --contention-seconds (3 by default, shorter than the variants' runs: 12
configurations x 4 peers x 3 runs x 3 s is about eight minutes). The database is vacuumed before
each configuration, so that dead row versions left by one configuration's hot-row updates do not
slow the next. pgbench runs min(clients, cores) threads (-j): more would only compete with the
server for the same cores.
--smoke: one client count (8), two shares (0 and 95%), one run of 1 s on the smoke table.

bench.py calls run(), then chart() for the PNG and report() for the page's section."""

import os
import pathlib
import statistics
import sys
import tempfile
import time

PEERS = ("bare", "plpgsql", "app", "sync_upsert")
LABELS = {"bare": "bare statement", "plpgsql": "PL/pgSQL function", "app": "application pattern",
          "sync_upsert": "sync_upsert"}
SHARES = (0, 50, 80, 95)  # percent of writes on the ten hot rows
CLIENTS = (1, 8, 32)
ROWS = 10_000
SECONDS = 3
HERE = pathlib.Path(__file__).parent


def plan(args):
    """The shares, client counts, table size, runs and seconds of this run."""
    if args.smoke:
        return {"shares": (0, 95), "clients": (8,), "rows": 2000, "runs": 1, "seconds": 1}
    return {"shares": SHARES, "clients": CLIENTS, "rows": ROWS, "runs": args.runs, "seconds": args.contention_seconds}


def threads(clients):
    return max(1, min(clients, os.cpu_count() or 1))


def run(args, pgbench, psql):
    """Measure every peer at every share and client count; pgbench and psql are bench.py's.
    Answers the plan with "tps": {(share, clients): {peer: median tx/s}}."""
    p = plan(args)
    configurations = len(p["shares"]) * len(p["clients"])
    expected = configurations * p["runs"] * len(PEERS) * p["seconds"]
    print(f"contention: {configurations} configurations x {p['runs']} runs x {len(PEERS)} peers x "
          f"{p['seconds']} s, about {expected / 60:.1f} min of pgbench", flush=True)
    started = time.monotonic()
    psql(args, "-d", "postgres", "-c", "DROP DATABASE IF EXISTS bench", "-c", "CREATE DATABASE bench")
    psql(args, "-d", "bench", "-v", f"rows={p['rows']}", "-f", str(HERE / "setup.sql"))
    tps = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        os.chmod(tmp, 0o777)
        for clients in p["clients"]:
            for share in p["shares"]:
                psql(args, "-d", "bench", "-c", "VACUUM")
                samples = {peer: [] for peer in PEERS}
                for _ in range(p["runs"]):  # interleaved, so drift hits every peer alike
                    for peer in PEERS:
                        r = pgbench(args, peer, p["rows"], 0, 0, clients, p["seconds"], workdir,
                                    hotshare=share, threads=threads(clients), log=False)
                        samples[peer].append(r["tps"])
                tps[(share, clients)] = {peer: statistics.median(s) for peer, s in samples.items()}
                print(("contention", f"{share}% hot", f"{clients} clients"),
                      {peer: round(v) for peer, v in tps[(share, clients)].items()}, flush=True)
    missing = [(k, peer) for k, by in tps.items() for peer, v in by.items() if not v > 0]
    if missing:
        sys.exit(f"no contention numbers for {missing}")
    p["minutes"] = (time.monotonic() - started) / 60
    print(f"contention: took {p['minutes']:.1f} min", flush=True)
    return p | {"tps": tps}


def measured(p):
    return "1 run" if p["runs"] == 1 else f"median of {p['runs']} runs"


def report(args, contended, image):
    """The page's contention section: the table, and the chart as a relative image link."""
    p, tps = contended, contended["tps"]
    shorter = p["seconds"] < (1 if args.smoke else args.seconds)
    shorter = " (shorter runs than above, to keep this part short)" if shorter else ""
    out = [
        "",
        "### Contention",
        "",
        f"The bare statement, the PL/pgSQL function, the application pattern and `sync_upsert`, every write "
        f"winning, on a table of {p['rows']:,} rows, with a share of the writes on ten hot rows (ids 1 to 10) "
        f"and the rest uniform over the table; {measured(p)} of {p['seconds']} s per peer and configuration"
        f"{shorter}, peers interleaved, the database vacuumed before each configuration; pgbench `-j` one "
        f"thread per client up to the number of cores. This part took {p['minutes']:.1f} minutes.",
        "",
        "| clients | writes on hot rows | " + " | ".join(f"{LABELS[peer]} tx/s" for peer in PEERS)
        + " | sync_upsert / bare | sync_upsert / PL/pgSQL |",
        "|---:|---:|" + "---:|" * (len(PEERS) + 2),
    ]
    for clients in p["clients"]:
        for share in p["shares"]:
            by = tps[(share, clients)]
            out.append(f"| {clients} | {share}% | " + " | ".join(f"{by[peer]:.0f}" for peer in PEERS)
                       + f" | {by['sync_upsert'] / by['bare']:.2f} | {by['sync_upsert'] / by['plpgsql']:.2f} |")
    out += ["", f"![tx/s of each peer by the share of writes on ten hot rows, one panel per client count]({image})"]
    return "\n".join(out) + "\n"


def chart(contended, path):
    """Draw the PNG: one panel per client count, x the share of writes on the hot rows, y tx/s,
    a line per peer, the panels on one scale."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("matplotlib is missing: bench/run.sh installs bench/requirements.txt into target/bench-venv")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    p, tps = contended, contended["tps"]
    fig, axes = plt.subplots(1, len(p["clients"]), figsize=(max(7.5, 2.5 + 3.6 * len(p["clients"])), 4.6),
                             sharey=True, squeeze=False)
    for ax, clients in zip(axes[0], p["clients"]):
        for peer, marker in zip(PEERS, "osD^"):
            ax.plot(p["shares"], [tps[(share, clients)][peer] for share in p["shares"]], marker=marker,
                    label=LABELS[peer])
        ax.set_title(f"{clients} client{'' if clients == 1 else 's'}")
        ax.set_xticks(p["shares"])
        ax.set_xticklabels([f"{share}%" for share in p["shares"]])
        ax.set_xlabel("writes on the 10 hot rows")
        ax.grid(alpha=0.3)
    # One scale from 0 for every panel (shared), set once all lines are drawn.
    axes[0][0].set_ylim(0, 1.08 * max(v for by in tps.values() for v in by.values()))
    axes[0][0].set_ylabel(f"tx/s ({measured(p)})")
    axes[0][0].yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(PEERS) if len(p["clients"]) > 1 else 2, frameon=False)
    fig.suptitle(f"Every write winning, {p['rows']:,} rows: tx/s as writes crowd onto ten hot rows")
    fig.tight_layout(rect=(0, 0.07 if len(p["clients"]) > 1 else 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
