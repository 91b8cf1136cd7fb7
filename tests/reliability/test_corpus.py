"""The hostile-input corpus: every case in tests/reliability/corpus/*.json is one test.

Each case calls one inventory_sync function with bound parameters and states what must come out:
an error with a fitting SQLSTATE, or a correct answer. For every case the runner also checks that
the backend survived (the same connection answers `SELECT 1`, and a new connection can be made),
that no error is an internal one (class XX, or 58), and that a call that errored changed nothing:
the extension's tables and the corpus's tables hash the same before and after.

A case is a JSON object:

    name        unique; the pytest id
    category    what kind of hostility (the run prints how many cases each category has)
    sql         the statement, with psycopg placeholders %(name)s for the parameters; every
                parameter is sent as text (or NULL) and cast in the statement, so identifiers
                (regclass, column names) arrive as parameter text too, never spliced into SQL
    params      name -> value:
                  "text"                  sent as is
                  42, 1.5e3, true         sent as their JSON text, exactly as written ("1.5e3")
                  null                    SQL NULL
                  {"json": V}             V as JSON text (ASCII, with \\u escapes, so lone
                                          surrogates and \\u0000 reach PostgreSQL as escapes)
                  {"gen": ...}            generated here from a compact description: "concat"
                                          (strings, {"repeat": s, "times": n}, {"random": n}),
                                          "object" (count keys), "array" (count elements)
                  {"query": "SELECT …"}   the first column of the query's first row, as text,
                                          computed before the call (e.g. a cursor sync_pull answered)
    expect      one of:
                  {"sqlstate": "22023"} or {"sqlstate": ["22P02", "22023"]} (when PostgreSQL
                  itself decides), optionally with "message": a substring of the primary message
                  {"status": "applied"} or {"status": [...]}    the answer's "status"
                  {"outcomes": [E, ...]}   sync_push: one expectation per change, each
                                           {"status": …} or {"sqlstate": …} (an "error" outcome),
                                           optionally with "result"
                  {"outcomes": {"count": N, "all": E}} or {"count": N, "first": E, "rest": E2},
                                           optionally "except": {"index": E3}
                  {"ok": true}             no error, any answer
                and optionally "result": a JSON value the answer must contain (objects by key)
    setup       statements run before the state snapshot (strings, or {"sql", "params"}; they
                see the case's params)
    session     statements run after the snapshot, just before the call (SET statement_timeout …)
    teardown    statements run after all checks, whatever happened (cleanup)
    verify      statements run after the call, each answering one boolean that must be true
    role        run the call (only the call) as this role
    unchanged   true: the state must not change even though the call succeeds
    known_bug   the extension does not do what `expect` says yet: the test is a strict xfail
                (an XPASS fails the run: the bug was fixed, drop the mark)
    fixed_bug   the bug this case found, since fixed (kept as the regression test's reason)
    note        why the expectation is what it is

After every call the session is reset (RESET ROLE, RESET ALL).

The objects the cases name (typed tables, views, roles) come from corpus/schema.sql.
"""

import json
import os
import re
import random
import string
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from conftest import connect

CORPUS = Path(__file__).parent / "corpus"
MIN_CASES = 150
CASE_KEYS = {"name", "category", "sql", "params", "expect", "setup", "session", "teardown", "verify",
             "role", "unchanged", "known_bug", "fixed_bug", "note", "expect_from_major"}
EXPECT_KEYS = {"sqlstate", "message", "status", "outcomes", "ok", "result"}

# The state a failed call must leave untouched.
STATE_TABLES = [
    "inventory_sync.inventory",
    "inventory_sync.conflicts",
    "inventory_sync.changes",
    "inventory_sync.changes_uuid",
    "inventory_sync.changes_text",
    "inventory_sync.mutations",
    "inventory_sync.mutations_uuid",
    "inventory_sync.mutations_text",
    "inventory_sync.tracked",
    "inventory_sync.field_policies",
    "inventory_sync.purge_horizon",
    "public.typed",
    "public.uuid_items",
    'public."Weird ""Name""; DROP TABLE typed;--"',
    "public.merged",
    "public.untracked",
]
SNAPSHOT_SQL = "SELECT " + ", ".join(
    f"(SELECT pg_catalog.md5(coalesce(pg_catalog.string_agg(pg_catalog.md5(t::text), ',' "
    f"ORDER BY pg_catalog.md5(t::text)), '')) FROM {table} t)"
    for table in STATE_TABLES
)

# SQLSTATE classes no input may ever produce: internal errors, system errors.
FORBIDDEN_CLASSES = ("XX", "58")


# --- the corpus --------------------------------------------------------------------------------

class Num:
    """A JSON number with a fraction or exponent, kept as written (1e400 is not a float)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text

    def __eq__(self, other):
        return float(self.text) == other


def to_json(value):
    """JSON text of a corpus value: ASCII, with \\u escapes; numbers exactly as the corpus wrote them."""
    if isinstance(value, Num):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{to_json(v)}" for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=True)


# Every sync_push case runs again through sync_push_json (test_sync_push_json_answers_as_sync_push).
PUSH_SQL = re.compile(r"SELECT inventory_sync\.sync_push\((%\(\w+\)s)::jsonb(.*)\)")


def load_cases():
    cases = []
    for path in sorted(CORPUS.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8"), parse_float=Num):
            case["_file"] = path.name
            cases.append(case)
    return cases


CASES = load_cases()


def case_param(case):
    marks = []
    if case.get("known_bug"):
        marks.append(pytest.mark.xfail(reason=case["known_bug"], strict=True))
    return pytest.param(case, id=case["name"], marks=marks)


# --- parameters --------------------------------------------------------------------------------

def gen_concat(spec, rng):
    out = []
    for part in spec["parts"]:
        if isinstance(part, str):
            out.append(part)
        elif "repeat" in part:
            out.append(part["repeat"] * part["times"])
        elif "random" in part:
            alphabet = string.ascii_letters + string.digits
            out.append("".join(rng.choice(alphabet) for _ in range(part["random"])))
        else:
            raise ValueError(f"unknown concat part {part!r}")
    return "".join(out)


def gen_object(spec, rng):
    """A JSON object with `count` keys `key`.format(i=…), each `value` (JSON)."""
    value = to_json(spec.get("value", 1))
    key = spec.get("key", "k{i}")
    body = ",".join(f"{json.dumps(key.format(i=i))}:{value}" for i in range(spec["count"]))
    return "{" + body + "}"


def substitute(template, names):
    if isinstance(template, str):
        return template.format(**names)
    if isinstance(template, list):
        return [substitute(t, names) for t in template]
    if isinstance(template, dict):
        return {k: substitute(v, names) for k, v in template.items()}
    return template


def gen_array(spec, rng):
    """A JSON array of `count` copies of `item`, with "{i}" in its strings replaced by the
    element's index, "{r}" by count-1-index and "{k}" by offset+index (format specs such as
    "{i:06d}" work); "int_id": true turns an "id" of digits into a number; "replace" maps indexes
    (as strings) to elements used as they are."""
    items = []
    count, offset = spec["count"], spec.get("offset", 0)
    for i in range(count):
        if str(i) in spec.get("replace", {}):
            items.append(spec["replace"][str(i)])
            continue
        item = substitute(spec["item"], {"i": i, "r": count - 1 - i, "k": offset + i})
        if spec.get("int_id") and isinstance(item, dict) and "id" in item:
            item["id"] = int(item["id"])
        items.append(item)
    return to_json(items)


GENERATORS = {"concat": gen_concat, "object": gen_object, "array": gen_array}


def param_value(conn, value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Num)):
        return to_json(value)
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1 and "json" in value:
        return to_json(value["json"])
    if isinstance(value, dict) and "gen" in value:
        return GENERATORS[value["gen"]](value, random.Random(value.get("seed", 0)))
    if isinstance(value, dict) and len(value) == 1 and "query" in value:
        row = conn.execute(value["query"]).fetchone()
        return None if row is None or row[0] is None else str(row[0])
    raise ValueError(f"unknown parameter form {value!r}")


def statements(conn, items, params):
    """(sql, parameters) of setup, verify or teardown items; statements without placeholders get
    None, so that psycopg leaves their % signs alone."""
    for item in items or []:
        if isinstance(item, str):
            item = {"sql": item}
        own = {k: param_value(conn, v) for k, v in item.get("params", {}).items()}
        yield item["sql"], ({**params, **own} if "%(" in item["sql"] else None)


# --- checks ------------------------------------------------------------------------------------

def as_list(x):
    return x if isinstance(x, list) else [x]


def contains(whole, part):
    """Whether JSON value `whole` contains `part` (objects: by key, recursively; else equal)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and contains(whole[k], v) for k, v in part.items())
    return whole == part


def check_outcome(index, outcome, want):
    if "sqlstate" in want:
        assert outcome.get("status") == "error", f"change {index}: expected an error outcome, got {outcome}"
        assert outcome.get("sqlstate") in as_list(want["sqlstate"]), f"change {index}: {outcome}"
        assert outcome.get("message"), f"change {index}: an error outcome without a message: {outcome}"
    if "status" in want:
        assert outcome.get("status") in as_list(want["status"]), f"change {index}: {outcome}"
    if "result" in want:
        assert contains(outcome, want["result"]), f"change {index}: {outcome} lacks {want['result']}"


def check_outcomes(answer, want):
    assert isinstance(answer, list), f"sync_push answered {answer!r}, not an array"
    if isinstance(want, list):
        assert len(answer) == len(want), f"{len(answer)} outcomes for {len(want)} expectations: {answer}"
        for i, (outcome, w) in enumerate(zip(answer, want)):
            check_outcome(i, outcome, w)
        return
    assert len(answer) == want["count"], f"{len(answer)} outcomes, expected {want['count']}"
    for i, outcome in enumerate(answer):
        if str(i) in want.get("except", {}):
            check_outcome(i, outcome, want["except"][str(i)])
        elif "all" in want:
            check_outcome(i, outcome, want["all"])
        else:
            check_outcome(i, outcome, want["first"] if i == 0 else want["rest"])


def all_errors(answer):
    return isinstance(answer, list) and answer and all(
        isinstance(o, dict) and o.get("status") == "error" for o in answer)


def short(value, limit=300):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


# --- fixtures ----------------------------------------------------------------------------------

SESSION_DEFAULTS = "SET TimeZone = 'UTC'; SET statement_timeout = '120s'; SET client_min_messages = warning"


class Runner:
    def __init__(self, db):
        self.db = db
        self.conn = None

    def connection(self):
        if self.conn is None or self.conn.closed:
            self.conn = connect(self.db)
            self.conn.execute(SESSION_DEFAULTS)
        return self.conn

    def reset_session(self):
        conn = self.connection()
        try:
            conn.execute("RESET ROLE")
            conn.execute("RESET ALL")
            conn.execute(SESSION_DEFAULTS)
        except psycopg.Error:
            conn.close()

    def snapshot(self):
        return self.connection().execute(SNAPSHOT_SQL).fetchone()


@pytest.fixture(scope="module")
def runner(db):
    with connect(db) as conn:
        for statement in (CORPUS / "schema.sql").read_text().split("\n--;\n"):
            if statement.strip():
                conn.execute(statement)
    r = Runner(db)
    yield r
    if r.conn is not None:
        r.conn.close()


# --- the tests ---------------------------------------------------------------------------------

def test_corpus_is_well_formed():
    names = Counter(c.get("name") for c in CASES)
    assert not [n for n, k in names.items() if k > 1], f"duplicate names: {[n for n, k in names.items() if k > 1]}"
    for case in CASES:
        where = f"{case['_file']}: {case.get('name')}"
        assert set(case) - {"_file"} <= CASE_KEYS, f"{where}: unknown keys {set(case) - CASE_KEYS - {'_file'}}"
        for key in ("name", "category", "sql", "expect"):
            assert key in case, f"{where}: no {key}"
        assert set(case["expect"]) <= EXPECT_KEYS and set(case["expect"]) & {"sqlstate", "status", "outcomes", "ok"}, where
        for state in as_list(case["expect"].get("sqlstate", [])):
            assert len(state) == 5 and state[:2] not in FORBIDDEN_CLASSES, f"{where}: {state}"
    per_category = Counter(c["category"] for c in CASES)
    assert all(n >= 3 for n in per_category.values()), per_category


def test_corpus_size(request):
    per_category = Counter(c["category"] for c in CASES)
    bugs = sum(1 for c in CASES if c.get("known_bug"))
    fixed = sum(1 for c in CASES if c.get("fixed_bug"))
    lines = [f"hostile-input corpus: {len(CASES)} cases in {len(per_category)} categories "
             f"({bugs} marked known_bug, {fixed} regression tests of fixed bugs)"]
    lines += [f"  {category:<22} {n:>4}" for category, n in sorted(per_category.items())]
    summary = "\n".join(lines)

    class Summary:
        def pytest_terminal_summary(self, terminalreporter):
            terminalreporter.write_line(summary)

    request.config.pluginmanager.register(Summary(), "corpus-summary")
    assert len(CASES) >= MIN_CASES, summary


@pytest.mark.parametrize("case", [case_param(c) for c in CASES])
def test_case(runner, case):
    conn = runner.connection()
    given = case.get("params", {})
    is_query = {name for name, v in given.items() if isinstance(v, dict) and "query" in v}
    params = {name: param_value(conn, v) for name, v in given.items() if name not in is_query}
    for sql, p in statements(conn, case.get("setup"), params):
        conn.execute(sql, p)
    # Parameters read from the database are read once the setup has run.
    params.update({name: param_value(conn, given[name]) for name in is_query})
    before = runner.snapshot()

    error = None
    answer = None
    try:
        for sql, p in statements(conn, case.get("session"), params):
            conn.execute(sql, p)
        if case.get("role"):
            conn.execute(f"SET ROLE {case['role']}")
        row = conn.execute(case["sql"], params or None).fetchone()
        answer = row[0] if row else None
        if isinstance(answer, str) and answer[:1] in "[{":
            try:
                answer = json.loads(answer)
            except ValueError:
                pass
    except psycopg.Error as e:
        error = e
    finally:
        try:
            runner.reset_session()
        except psycopg.OperationalError:
            pass

    try:
        # The backend survived, and the server still takes connections.
        assert not conn.closed, f"the connection was closed by the call: {error}"
        assert conn.execute("SELECT 1").fetchone()[0] == 1
        with connect(runner.db) as other:
            assert other.execute("SELECT 1").fetchone()[0] == 1

        sqlstate = error.sqlstate if error is not None else None
        assert sqlstate is None or sqlstate[:2] not in FORBIDDEN_CLASSES, (
            f"internal error {sqlstate}: {error}")

        expect = case["expect"]
        # What changed between PostgreSQL majors (16 reads "1_000" and "0x10" as integers):
        # "expect_from_major": {"16": {...}} replaces the expectation from that major on.
        major = conn.info.server_version // 10000
        for since, later in sorted(case.get("expect_from_major", {}).items(), key=lambda kv: int(kv[0])):
            if major >= int(since):
                expect = later
        if "sqlstate" in expect:
            assert error is not None, f"expected SQLSTATE {expect['sqlstate']}, got the answer {short(answer)}"
            assert sqlstate in as_list(expect["sqlstate"]), (
                f"expected SQLSTATE {expect['sqlstate']}, got {sqlstate}: {short(str(error))}")
            message = error.diag.message_primary or ""
            assert message and message != "internal error", f"an unclear error: {error!r}"
            assert expect.get("message", "") in message, f"expected a message with {expect['message']!r}: {short(message)}"
        else:
            assert error is None, f"expected {expect}, got {sqlstate}: {short(str(error))}"
            if "status" in expect:
                assert isinstance(answer, dict) and answer.get("status") in as_list(expect["status"]), (
                    f"expected status {expect['status']}, got {short(answer)}")
            if "outcomes" in expect:
                check_outcomes(answer, expect["outcomes"])
            if "result" in expect:
                assert contains(answer, expect["result"]), f"{short(answer)} lacks {expect['result']}"

        # A call that failed (or whose every change failed) wrote nothing.
        if error is not None or all_errors(answer) or case.get("unchanged"):
            assert runner.snapshot() == before, "the state changed although the call wrote nothing"

        for sql, p in statements(conn, case.get("verify"), params):
            row = conn.execute(sql, p).fetchone()
            assert row is not None and row[0] is True, f"verify failed: {sql}"
    finally:
        conn = runner.connection()
        for sql, p in statements(conn, case.get("teardown"), params):
            conn.execute(sql, p)


# The majors after 15 run the reliability suite's fast mode (scripts/test.sh), without this mirror:
# sync_push_json shares everything but the reading of its text with sync_push.
MIRROR = os.environ.get("INVENTORY_SYNC_PUSH_JSON_MIRROR", "1") != "0"


@pytest.mark.skipif(not MIRROR, reason="INVENTORY_SYNC_PUSH_JSON_MIRROR=0 (the fast mode of the majors after 15)")
@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in CASES if PUSH_SQL.fullmatch(c["sql"])])
def test_sync_push_json_answers_as_sync_push(runner, case):
    """Every sync_push case again, through sync_push_json, from the same state (each call in a
    transaction rolled back afterwards): the same outcomes, or the same error."""
    conn = runner.connection()
    match = PUSH_SQL.fullmatch(case["sql"])
    as_json = f"SELECT inventory_sync.sync_push_json({match[1]}::json{match[2]})"
    given = case.get("params", {})
    is_query = {name for name, v in given.items() if isinstance(v, dict) and "query" in v}
    fixed = {name: param_value(conn, v) for name, v in given.items() if name not in is_query}
    answers = []
    try:
        for sql in (case["sql"], as_json):
            try:
                with conn.transaction(force_rollback=True):
                    params = dict(fixed)
                    for statement, p in statements(conn, case.get("setup"), params):
                        conn.execute(statement, p)
                    params.update({name: param_value(conn, given[name]) for name in is_query})
                    for statement, p in statements(conn, case.get("session"), params):
                        conn.execute(statement, p)
                    if case.get("role"):
                        conn.execute(f"SET ROLE {case['role']}")
                    answer = conn.execute(sql, params or None).fetchone()[0]
                    # The server's clock, where an outcome shows it (a row's version too),
                    # differs from call to call.
                    for outcome in answer if isinstance(answer, list) else []:
                        if isinstance(outcome, dict):
                            outcome.pop("server_time", None)
                            outcome.pop("ahead_by_seconds", None)
                            outcome.pop("version", None)
                    answers.append(("answer", answer))
            except psycopg.Error as e:
                # A statement timeout strikes wherever the call has got to.
                answers.append(("error", e.sqlstate, None if e.sqlstate == "57014" else e.diag.message_primary))
    finally:
        runner.reset_session()
    assert answers[0] == answers[1], f"sync_push: {short(str(answers[0]))}; sync_push_json: {short(str(answers[1]))}"
