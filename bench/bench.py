"""Runs every benchmark variant side by side with pgbench and writes the results table.

Usage: bench.py --host DIR --port N [--bin DIR] (--reports DIR | --out FILE) [--smoke]
--bin DIR: the PostgreSQL binaries (psql, pgbench, postgres) of the server's major; bench/run.sh
passes those of the major scripts/common.sh chose.
--reports DIR: the report is the dated page DIR/benchmarks-YYYY-MM-DD.md of the day the run
started. The page's results section (after <!-- results -->) is replaced; a page that does not
exist yet starts from the narrative of the newest earlier page, marked as copied.
--out FILE: the results alone, in FILE (what bench/run.sh --smoke uses: no page in docs/).
Sizes, scenarios and client counts as in the newest docs/reports/benchmarks-*.md; --smoke runs
each variant once, briefly, on a small table, and only checks that every variant produced numbers.
After the variants, the contention run (bench/contention.py) adds its table and chart."""

import argparse
import datetime
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import contention  # noqa: E402
from scripts import ROWS_PER_XACT, VARIANTS  # noqa: E402

HERE = pathlib.Path(__file__).parent


def psql(args, *extra):
    cmd = [f"{args.bin}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", args.host, "-p", str(args.port),
           "-U", "postgres", *extra]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def pgbench(args, variant, rows, hot, conflicts, clients, seconds, workdir, hotshare=0, threads=None, log=True):
    """One pgbench run of a variant: tx/s, and (with log) the mean and p99 latency in ms."""
    script = workdir / f"{variant}.sql"
    script.write_text(VARIANTS[variant])
    prefix = workdir / f"log-{variant}"
    for old in workdir.glob(f"log-{variant}*"):
        old.unlink()
    cmd = [f"{args.bin}/pgbench", "-n", "-M", "prepared", "-h", args.host, "-p", str(args.port), "-U", "postgres",
           "-c", str(clients), "-j", str(threads or clients), "-T", str(seconds), "-f", str(script),
           "-D", f"rows={rows}", "-D", f"hot={hot}", "-D", f"hotshare={hotshare}", "-D", f"conflicts={conflicts}",
           *(["-l", f"--log-prefix={prefix}"] if log else []), "bench"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if done.returncode != 0:
        sys.exit(f"pgbench failed for {variant}:\n{done.stdout}\n{done.stderr}")
    out = done.stdout
    tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
    failed = int(re.search(r"number of failed transactions: (\d+)", out).group(1)) if "failed transactions" in out else 0
    latencies = []
    for log in workdir.glob(f"log-{variant}*"):
        for line in log.read_text().splitlines():
            latencies.append(int(line.split()[2]) / 1000.0)
    latencies.sort()
    avg = statistics.fmean(latencies) if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan")
    return {"tps": tps, "avg": avg, "p99": p99, "failed": failed}


def run(args):
    sizes = [2000] if args.smoke else [10_000, 1_000_000]
    scenarios = [("all writes win", 0), ("90% conflicts", 90)]
    loads = [("1 client", 1, 0)] if args.smoke else [("1 client", 1, 0), ("8 clients, 10 hot rows", 8, 1)]
    runs, seconds = (1, 1) if args.smoke else (args.runs, args.seconds)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        os.chmod(tmp, 0o777)
        for rows in sizes:
            psql(args, "-d", "postgres", "-c", "DROP DATABASE IF EXISTS bench", "-c", "CREATE DATABASE bench")
            psql(args, "-d", "bench", "-v", f"rows={rows}", "-f", str(HERE / "setup.sql"))
            for scenario, conflicts in scenarios:
                for load, clients, hot in loads:
                    key = (rows, scenario, load)
                    samples = {v: [] for v in VARIANTS}
                    for _ in range(runs):  # interleaved, so drift hits every variant alike
                        for variant in VARIANTS:
                            samples[variant].append(pgbench(args, variant, rows, hot, conflicts, clients, seconds, workdir))
                    results[key] = {v: {m: statistics.median(s[m] for s in ss) for m in ("tps", "avg", "p99", "failed")}
                                    for v, ss in samples.items()}
                    print(key, {v: round(r["tps"]) for v, r in results[key].items()}, flush=True)
    return results


def run_pulls(args):
    """A device's first pull, side by side with a hand-written keyset query (bench/pulls.sql),
    for items written by many transactions and by one; answers variant -> numbers per case."""
    rows = 5_000 if args.smoke else 200_000
    pulls = {}
    for case, one in (("many transactions", "false"), ("one transaction", "true")):
        psql(args, "-d", "postgres", "-c", "DROP DATABASE IF EXISTS pulls", "-c", "CREATE DATABASE pulls")
        cmd = [f"{args.bin}/psql", "-X", "-q", "-h", args.host, "-p", str(args.port), "-U", "postgres", "-d", "pulls",
               "-v", f"rows={rows}", "-v", f"one_transaction={one}", "-f", str(HERE / "pulls.sql")]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        by_variant = {}
        for line in out.split("\n"):
            parts = line.split()
            if len(parts) == 5:
                by_variant[parts[0]] = {"pages": int(parts[1]), "ms": float(parts[2]), "first": float(parts[3]),
                                        "last": float(parts[4])}
        pulls[(rows, case)] = by_variant
        print((rows, case), by_variant, flush=True)
    return pulls


def pulls_report(pulls):
    out = ["", "### Pulls", "",
           "A device's first pull in pages of 1,000 (`sync_pull`), and a hand-written keyset query "
           "(`WHERE (updated_at, id) > (…) ORDER BY updated_at, id LIMIT 1000`, rows as JSON) over the same items; "
           "each page timed inside the server (bench/pulls.sql).", "",
           "| items | written by | variant | pages | total ms | first 10 pages, mean ms | last 10 pages, mean ms | last / first |",
           "|---:|---|---|---:|---:|---:|---:|---:|"]
    bars = []
    for (rows, case), by in pulls.items():
        for v, r in by.items():
            out.append(f"| {rows:,} | {case} | {v} | {r['pages']} | {r['ms']:.0f} | {r['first']:.2f} | {r['last']:.2f} | "
                       f"{r['last'] / r['first']:.2f} |")
        speed = by["keyset"]["ms"] / by["sync_pull"]["ms"]
        growth = by["sync_pull"]["last"] / by["sync_pull"]["first"]
        label = f"{rows:,} items, {case}"
        bars.append(f"| {label} | sync_pull / keyset query (speed) | {speed:.2f} | ≥ 0.8 | {'met' if speed >= 0.8 else '**missed**'} |")
        bars.append(f"| {label} | sync_pull last pages / first pages (time) | {growth:.2f} | ≤ 1.5 | "
                    f"{'met' if growth <= 1.5 else '**missed**'} |")
    return bars, out


def ratio(results, key, a, b, rows_based=False):
    ra, rb = results[key][a], results[key][b]
    fa = ROWS_PER_XACT[a] if rows_based else 1
    fb = ROWS_PER_XACT[b] if rows_based else 1
    return (ra["tps"] * fa) / (rb["tps"] * fb)


def report(args, results, day, pulls):
    lines = []
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    version = subprocess.run([f"{args.bin}/postgres", "--version"], capture_output=True, text=True).stdout.strip()
    lines += [
        "| variant | tx/s | rows/s | latency avg (ms) | latency p99 (ms) | vs bare | vs PL/pgSQL |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    out = []
    for key, by_variant in results.items():
        rows, scenario, load = key
        out.append(f"\n### {rows:,} rows, {scenario}, {load}\n")
        out += lines
        for v, r in by_variant.items():
            typed = v in ("bare_typed", "sync_upsert_in")
            base = "bare_typed" if typed else "bare"
            vs_plpgsql = "" if typed else f"{ratio(results, key, v, 'plpgsql', True):.2f}"
            out.append(
                f"| {v} | {r['tps']:.0f} | {r['tps'] * ROWS_PER_XACT[v]:.0f} | {r['avg']:.3f} | {r['p99']:.3f} | "
                f"{ratio(results, key, v, base, True):.2f} | {vs_plpgsql} |"
            )
    bars = []
    for key in results:
        rows, scenario, load = key
        label = f"{rows:,} rows, {scenario}, {load}"
        def check(name, value, bar):
            bars.append(f"| {label} | {name} | {value:.2f} | ≥ {bar} | {'met' if value >= bar else '**missed**'} |")
        if scenario == "all writes win":
            check("sync_upsert / bare", ratio(results, key, "sync_upsert", "bare"), 0.85)
            check("sync_upsert / PL/pgSQL", ratio(results, key, "sync_upsert", "plpgsql"), 1.2)
        else:
            check("sync_upsert / PL/pgSQL", ratio(results, key, "sync_upsert", "plpgsql"), 1.2)
        check("sync_upsert / app pattern", ratio(results, key, "sync_upsert", "app"), 2.0)
        check("sync_upsert_in / bare typed", ratio(results, key, "sync_upsert_in", "bare_typed"), 0.8)
        check("sync_push 1000 rows/s / sync_upsert", ratio(results, key, "sync_push_1000", "sync_upsert", True), 5.0)
    sizes = sorted({k[0] for k in results})
    if len(sizes) == 2:
        for scenario_load in {(k[1], k[2]) for k in results}:
            small, large = results[(sizes[0], *scenario_load)], results[(sizes[1], *scenario_load)]
            value = large["sync_upsert"]["tps"] / small["sync_upsert"]["tps"]
            bars.append(f"| {scenario_load[0]}, {scenario_load[1]} | sync_upsert 1M rows / 10k rows | {value:.2f} | ≥ 0.8 | "
                        f"{'met' if value >= 0.8 else '**missed**'} |")
    pull_bars, pull_lines = pulls_report(pulls)
    bars += pull_bars
    out += pull_lines
    header = [
        "## Results",
        "",
        f"Run {day} on {os.cpu_count()} cores ({cpu}), {version}, "
        f"{platform.system()} {platform.release()}; pgbench -M prepared, "
        f"{'1 run' if args.smoke else f'median of {args.runs} runs'} of {1 if args.smoke else args.seconds} s per variant, "
        "variants interleaved. tx/s and latencies are per pgbench transaction (one call; for sync_push one batch).",
        "",
        "### The bars",
        "",
        "| configuration | ratio | value | bar | |",
        "|---|---|---:|---:|---|",
        *bars,
    ]
    return "\n".join(header + out) + "\n"


RESULTS = "<!-- results -->"
PAGE = re.compile(r"benchmarks-(\d{4}-\d{2}-\d{2})\.md")
COPIED = "_The text up to the results was copied from"


def dated_page(reports, day, text):
    """Write the results into reports/benchmarks-DAY.md: keep the page's narrative, replace its
    results; a new page starts from the narrative of the newest earlier page."""
    page = reports / f"benchmarks-{day}.md"
    if page.exists() and RESULTS in page.read_text():
        head = page.read_text().split(RESULTS)[0]
    else:
        earlier = sorted(p for p in reports.glob("benchmarks-*.md") if PAGE.fullmatch(p.name) and p.name < page.name)
        if not earlier:
            sys.exit(f"no earlier benchmarks-*.md in {reports} to take the narrative from")
        previous = earlier[-1]
        lines = previous.read_text().split(RESULTS)[0].splitlines()
        # The title names the run; a note says whose narrative this is until someone revises it.
        body = [l for l in lines[1:] if not l.startswith(COPIED)]
        while body and not body[0].strip():
            body.pop(0)
        note = (f"{COPIED} [the run of {PAGE.fullmatch(previous.name).group(1)}]({previous.name}) and still "
                "describes that run; revise it for the results below._")
        head = "\n".join([f"# Benchmarks: the run of {day}", "", note, "", *body]) + "\n"
        print(f"benchmark: {page.name} is new; its narrative comes from {previous.name}: revise it")
    reports.mkdir(parents=True, exist_ok=True)
    page.write_text(head + RESULTS + "\n" + text)
    return page


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bin", default="/usr/lib/postgresql/15/bin", help="the PostgreSQL binaries to use")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--reports", help="the directory of the dated report pages")
    where.add_argument("--out", help="a file for the results alone")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--contention-seconds", type=int, default=contention.SECONDS,
                    help="seconds per pgbench run of the contention part (runs: --runs)")
    args = ap.parse_args()
    if args.smoke and args.reports:
        sys.exit("--smoke writes no report page: use --out")
    day = datetime.date.today().isoformat()  # the day the run started names its page
    results = run(args)
    missing = [(k, v) for k, by in results.items() for v, r in by.items() if not r["tps"] > 0]
    if missing:
        sys.exit(f"no numbers for {missing}")
    pulls = run_pulls(args)
    contended = contention.run(args, pgbench, psql)
    text = report(args, results, day, pulls)
    # The chart goes next to the page (or the --out file), the page links it by its bare name.
    page = pathlib.Path(args.reports) / f"benchmarks-{day}.md" if args.reports else pathlib.Path(args.out)
    chart = page.with_name(f"contention-{day}.png" if args.reports else f"{page.stem}-contention.png")
    contention.chart(contended, chart)
    text += contention.report(args, contended, chart.name)
    if args.reports:
        out = dated_page(pathlib.Path(args.reports), day, text)
    else:
        out = page
        out.write_text(text)
    print(f"benchmark: contention chart written to {chart}")
    print(f"benchmark: {sum(len(v) for v in results.values())} variant runs written to {out}")


if __name__ == "__main__":
    main()
