"""A property-based fuzzer of the SQL functions, against a live server (Hypothesis, stateful).

Hypothesis generates sequences of calls: sync_upsert and sync_delete on the default table,
sync_upsert_in and sync_delete_in on a typed tracked table, sync_push batches mixing both with
invalid changes (atomic or not), set_policy switching fields of both tables between lww,
field_lww, delta and server_wins (and refused ones), sync_pull with random cursors and limits and
whole-feed walks, retries of earlier calls (same client_id and mutation_id), purges; with
timestamps that tie often (equal client_ts, different or missing client_ids), far in the past,
the extremes of timestamptz, ahead of the server's clock, infinite or NULL; and odd JSON: big and
exponent-form numbers, -0, 1.000, unicode, empty and reserved keys, nesting, non-objects.

After every call:
- no internal error (XX000), the connection is alive, and an error's SQLSTATE is one the
  reference documents for that call (docs/REFERENCE.md "Errors", README's error table);
- the default table follows a model: a Python copy of the rules (last-write-wins ordered by
  (client_ts, client_id), equal timestamps applying unless both carry a client_id and the stored
  one is greater; tombstones; reserved keys; the merge policies, ported from src/merge.rs; the
  clock-skew guard; mutation ids). Every answer must be exactly the model's (status, created,
  updated_at, applied/lost, server_data, delta_without_base, duplicate), every stored row must be
  the model's (data, updated_at, updated_by, deleted, field clocks), and the journal must gain
  exactly the model's rows (one per conflict, rejection and merged write, with its payload);
- the tracked table: its decisions (applied / conflict / merged, applied and lost fields) are
  predicted from the stored row and clocks read before the call (the same rules), errors only
  where the values sent cannot fit; a conflict, rejection or duplicate leaves the row as it was;
- a duplicate (same client_id and mutation_id for the row) answers the first answer with
  "duplicate": true and changes nothing;
- every conflict, rejection and merged answer has its journal row, and nothing else adds one;
- pulls: answers have the documented shape, default-table entries show the model's rows, a walk
  of the whole feed lists every row exactly once.

JSON nested around serde_json's limit (126 to 300 levels) is generated too: such a value is
stored and pulled at any depth, and refused with 54001 only where the extension must take it
apart. What the fuzzer found is kept below as regression tests (deep JSON used to end in XX000;
a walk of the feed from the beginning after a purge was refused; a server_wins field sent null
did not converge), and what is still open as strict xfails (KNOWN_BUGS: the fuzzer steps around
those cases until they are fixed).

Short mode (CI): a fixed number of examples, derandomized, so a run is reproducible and takes
well under 90 s. INVENTORY_SYNC_SOAK=1: many more examples, random seeds.
"""

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Optional

import psycopg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from conftest import SOAK, connect

DEFAULT = "inventory_sync.inventory"
ITEMS = "public.items"
MAX_SKEW_US = 300 * 1_000_000
CALLS = {"n": 0}
STATS = {}


def count(what):
    STATS[what] = STATS.get(what, 0) + 1

# ---------------------------------------------------------------------------------------------
# Timestamps: microseconds since 2000-01-01 UTC, PostgreSQL's own representation.

PG_MIN_US = -211_813_488_000_000_000          # 4714-11-24 00:00:00 BC
PG_MAX_US = 9_223_371_331_199_999_999         # 294276-12-31 23:59:59.999999
DAY_US = 86_400_000_000


def days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


EPOCH_2000_DAYS = days_from_civil(2000, 1, 1)
BASE_US = (days_from_civil(2024, 3, 1) - EPOCH_2000_DAYS) * DAY_US + 10 * 3_600_000_000   # 2024-03-01 10:00 UTC


def ts_text(us):
    """A timestamptz literal for `us`."""
    days, rest = divmod(us, DAY_US)
    y, m, d = civil_from_days(days + EPOCH_2000_DAYS)
    secs, micro = divmod(rest, 1_000_000)
    hh, mm, ss = secs // 3600, secs // 60 % 60, secs % 60
    era = "" if y > 0 else " BC"
    return f"{y if y > 0 else 1 - y:04d}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}.{micro:06d}+00{era}"


TS_JSON = re.compile(r"^(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?\+00:00( BC)?$")


def parse_ts(text):
    """A timestamp as the answers render it (TimeZone UTC) to microseconds since 2000."""
    mt = TS_JSON.match(text)
    assert mt, f"unexpected timestamp rendering {text!r}"
    y, mo, d, hh, mi, ss = (int(g) for g in mt.groups()[:6])
    if mt.group(8):
        y = 1 - y
    frac = int((mt.group(7) or "0").ljust(6, "0"))
    days = days_from_civil(y, mo, d) - EPOCH_2000_DAYS
    return ((days * 86400 + hh * 3600 + mi * 60 + ss) * 1_000_000) + frac


def now_us():
    return int((time.time() - 946_684_800) * 1_000_000)


# ---------------------------------------------------------------------------------------------
# JSON: numbers are Decimal, so every digit survives; `dumps` writes them as they are.

def loads(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


def dumps(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(dumps(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + dumps(x) for k, x in v.items()) + "}"
    if isinstance(v, Raw):
        return v.text
    raise TypeError(v)


@dataclass(frozen=True)
class Raw:
    """JSON text sent as is (for what Python values cannot spell)."""
    text: str


def norm(v):
    """A comparable form of a JSON value: numbers by value, never equal to booleans."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, Decimal):
        return ("n", v)
    if isinstance(v, (int, float)):
        return ("n", Decimal(str(v)))
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("z",)
    if isinstance(v, list):
        return ("a", tuple(norm(x) for x in v))
    if isinstance(v, dict):
        return ("o", tuple(sorted((k, norm(x)) for k, x in v.items())))
    if isinstance(v, Raw):
        return norm(loads(v.text))
    raise TypeError(v)


def numeric_text(d):
    """jsonb's text of a number (numeric_out: plain digits, the scale kept)."""
    s = format(d, "f")
    return s.lstrip("-") if d == 0 else s


def rust_i64(text):
    """Rust's `text.parse::<i64>()`."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    n = int(text)
    return n if -(2**63) <= n < 2**63 else None


def utf8_key(s):
    return s.encode("utf-8")


# ---------------------------------------------------------------------------------------------
# The merge rules, ported from src/merge.rs (and the default table's single statement).

LWW, FIELD_LWW, DELTA, SERVER_WINS = "lww", "field_lww", "delta", "server_wins"


def beats(w, s):
    """Whether a write stamped w = (ts, client_id) may replace state stamped s."""
    if w[0] != s[0]:
        return w[0] > s[0]
    if w[1] is not None and s[1] is not None:
        return utf8_key(w[1]) >= utf8_key(s[1])
    return True


def cmax(a, b):
    return a if beats(a, b) else b


def clock_json(c):
    return {"ts": Decimal(c[0]), "by": c[1]} if c[1] is not None else {"ts": Decimal(c[0])}


def clock_from_json(v):
    if not isinstance(v, dict) or not isinstance(v.get("ts"), Decimal) or v["ts"] != v["ts"].to_integral_value():
        return None
    by = v.get("by")
    return (int(v["ts"]), by if isinstance(by, str) else None)


class NotANumber(Exception):
    pass


def is_number(v):
    return isinstance(v, Decimal) and not isinstance(v, bool)


@dataclass
class Stored:
    fields: dict
    row: tuple
    clocks: dict
    deleted: bool
    implicit: bool
    floor: Optional[tuple] = None    # a row brought back after a delete: the delete's clock


@dataclass
class Merge:
    fields: dict
    row: tuple
    clocks: dict
    applied: list
    lost: list
    without_base: list
    status: str
    floor: Optional[tuple] = None


# The floor is kept among the field clocks under the timestamp column's name (no field has it).
FLOOR_KEY = "updated_at"


def split_floor(clocks):
    """Field clocks as stored: (the clocks of the fields, the floor)."""
    clocks = dict(clocks)
    floor = clock_from_json(clocks.pop(FLOOR_KEY)) if FLOOR_KEY in clocks else None
    return clocks, floor


def with_floor(clocks, floor):
    return dict(clocks, **{FLOOR_KEY: clock_json(floor)}) if floor is not None else dict(clocks)


def merge(stored, clock, payload, base, policy):
    keys = sorted(payload, key=utf8_key)
    for k in keys:
        if policy(k) == DELTA and payload[k] is not None and not is_number(payload[k]):
            raise NotANumber(k)
    fresh = stored is None or (stored.deleted and beats(clock, stored.row))
    if fresh:
        floor = stored.row if stored is not None and stored.deleted else None
        return Merge(dict(payload), clock, {k: clock_json(clock) for k in keys}, keys, [], [], "applied", floor)
    m = Merge(dict(stored.fields), stored.row, dict(stored.clocks), [], [], [], "applied", stored.floor)
    if stored.deleted:
        m.lost, m.status = keys, "conflict"
        return m
    row_wins = beats(clock, stored.row)
    for k in keys:
        sent = payload[k]
        own = clock_from_json(stored.clocks[k]) if k in stored.clocks else None
        implicit = stored.row if stored.implicit and k in stored.fields else None
        if own is None and implicit is None and stored.floor is not None and not beats(clock, stored.floor):
            m.lost.append(k)            # not written since the row came back, older than the delete
            continue
        fc = own if own is not None else implicit
        p = policy(k)
        has_base = base is not None and k in base
        if p == DELTA and not has_base:
            m.without_base.append(k)
            p = LWW
        new, applies = None, False
        if p == LWW:
            new, applies = sent, row_wins
        elif p == FIELD_LWW:
            new, applies = sent, fc is None or beats(clock, fc)
        elif p == SERVER_WINS:
            unset = fc is None or stored.fields.get(k) is None
            earlier = fc is not None and not beats(clock, fc)
            # null is no value: it never replaces one, whatever its clock.
            new, applies = sent, unset if sent is None else (unset or earlier)
        else:
            current = stored.fields.get(k)
            b = base[k]
            if current is None:
                current = b
            if not (is_number(current) and is_number(sent) and is_number(b)):
                raise NotANumber(k)
            with localcontext() as ctx:
                ctx.prec, ctx.Emax, ctx.Emin = 100_000, 999_999, -999_999
                new, applies = current + (sent - b), True
        if applies:
            m.fields[k] = new
            c = clock if (p == SERVER_WINS or fc is None) else cmax(fc, clock)
            m.clocks[k] = clock_json(c)
            m.applied.append(k)
        else:
            m.lost.append(k)
    touched = bool(m.applied) or (not payload and row_wins)
    if touched:
        m.row = cmax(stored.row, clock)
    if not m.lost and touched:
        m.status = "applied"
    elif not m.applied:
        m.status = "conflict"
    else:
        m.status = "merged"
    return m


# ---------------------------------------------------------------------------------------------
# The model of the default table.

@dataclass
class Row:
    data: dict
    ts: int
    by: Optional[str]
    clocks: dict
    deleted: bool

    def server_data(self, id):
        if self.deleted:
            return {"id": Decimal(id), "updated_at": self.ts, "deleted": True}
        d = dict(self.data)
        d.update({"id": Decimal(id), "updated_at": self.ts})
        return d


@dataclass
class Expect:
    """What a write must do: raise `error` (a set of SQLSTATEs), or answer `answer` (exact, with
    updated_at and server_data's updated_at as microseconds) and journal `journal`."""
    error: Optional[set] = None
    answer: Optional[dict] = None
    journal: list = field(default_factory=list)
    new_row: object = "same"          # "same", None (no row) or a Row
    remember: Optional[tuple] = None  # mutation key to remember the answer under
    table: str = DEFAULT
    deep: bool = False                # sends a value nested too deep: 54001 is allowed instead
    deep_row: bool = False            # known bug deep_row may answer 54001 instead


@dataclass
class Write:
    op: str                 # upsert | delete
    id: object              # the id as passed (int for the default table; text for tracked)
    payload: object         # dict, Raw, other JSON, or None (SQL NULL)
    ts: object              # microseconds, "infinity", "-infinity", None, or Raw text
    client_id: Optional[str] = None
    mutation_id: Optional[str] = None
    base: object = None     # dict, other JSON, or None


def ts_param(ts):
    if ts is None:
        return None
    if isinstance(ts, int):
        return ts_text(ts)
    if isinstance(ts, Raw):
        return ts.text
    return ts


# ---------------------------------------------------------------------------------------------
# Strategies.

ODD_STRINGS = ["", "NULL", "null", "\"", "\\", "{,}", "a\"b\\c", " x ", "é", "😀", "{1,2}", "1", "true",
               "\u2028", "日本", "a\tb"]
ODD_NUMBERS = ["0", "-0", "1.000", "0.1", "-1.5", "1E+400", "1e-300", "123456789012345678901234567890.123456789",
               "9223372036854775807", "9223372036854775808", "-9223372036854775808", "2.5", "0.005", "1E+2", "7"]
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
numbers = st.one_of(st.integers(-5, 20).map(Decimal), st.sampled_from(ODD_NUMBERS).map(Decimal),
                    st.integers(-(2**70), 2**70).map(Decimal),
                    st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**6, max_value=10**6, places=3))
scalars = st.one_of(st.none(), st.booleans(), numbers, st.sampled_from(ODD_STRINGS), text)
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                          st.dictionaries(st.sampled_from(["a", "b", ""]) | text, kids, max_size=3)),
                           max_leaves=6)
# Arrays nested this deep, as a field's value: 126 fit in the 127 levels serde_json reads, with the
# payload object around them; from 127 on the value is too deep (54001 where it must be parsed).
deep_values = st.sampled_from([100, 126, 127, 128, 300]).map(lambda d: Raw("[" * d + "]" * d))


def depth(v):
    """Nesting levels of a JSON value (a scalar: 0)."""
    if isinstance(v, Raw):
        return depth(loads(v.text)) if v.text[:1] in "[{" else 0
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    return 0


def too_deep(*values):
    return any(depth(v) > 127 for v in values)


def deep_merge(row_json, payload):
    """Whether a merging write's answer, which carries the row as server_data (the stored row
    and what the write sets), nests deeper than 127 levels (known bug deep_row)."""
    values = payload.values() if isinstance(payload, dict) else ()
    server_data = max(depth(row_json) if row_json else 0, 1 + max((depth(v) for v in values), default=0))
    return 1 + server_data > 127


DEFAULT_FIELDS = ["stock", "price", "name", "note"] * 4 + ["", "a b", "é", "id", "updated_at"]
DEFAULT_IDS = [1, 2, 3, 9_223_372_036_854_775_807]
CLIENTS = [None, None, None, "a", "a", "b", "b", "B", "é", "", "dev-10", "dev-9"]
MUTATIONS = [None, None, None, None, "m1", "m2", "m3"]
POLICIES = [LWW, FIELD_LWW, DELTA, SERVER_WINS]

def weighted(*pairs):
    """One of the strategies, each drawn with its weight."""
    return st.sampled_from([strat for w, strat in pairs for _ in range(w)]).flatmap(lambda strat: strat)


def rarely(draw, n):
    """True once in about n draws (a middle value: Hypothesis favours the ends of a range)."""
    return draw(st.integers(0, n - 1)) == n // 2


timestamps = weighted(
    (60, st.integers(0, 6).map(lambda k: BASE_US + k * 1_000_000)),            # ties are common
    (12, st.integers(0, 6).map(lambda k: BASE_US + k * 1_000_000 + 1)),
    (8, st.sampled_from([PG_MIN_US, PG_MIN_US + 1, 0, -63_113_904_000_000_000, -946_684_800_000_000, BASE_US - DAY_US])),
    (6, st.sampled_from(["future", "max"])),                                   # rejected: clock skew
    (4, st.sampled_from(["infinity", "-infinity", None, Raw("not a time"), Raw("294277-01-01 00:00:00+00")])),
)


def resolve_ts(ts):
    """Generated timestamps relative to the server clock, resolved now."""
    if ts == "future":
        return now_us() + DAY_US
    if ts == "max":
        return PG_MAX_US
    return ts


@st.composite
def default_payloads(draw, id):
    if rarely(draw, 40):
        return draw(st.sampled_from([None, [], "x", Decimal(1), True, Raw("null")]))
    payload = {}
    for k in draw(st.lists(st.sampled_from(DEFAULT_FIELDS), max_size=4, unique=True)):
        if k == "id":
            payload[k] = draw(st.sampled_from([Decimal(id), str(id), None, Decimal(id) + 1, "x", True,
                                               Decimal(str(id) + ".0"), "+" + str(id), [Decimal(id)]]))
        elif k in ("stock", "price"):
            payload[k] = draw(st.one_of(numbers, numbers, json_values))
        elif rarely(draw, 30):
            payload[k] = draw(deep_values)
        else:
            payload[k] = draw(json_values)
    return payload


@st.composite
def bases(draw):
    pick = draw(st.sampled_from(range(10)))
    if pick < 5:
        return None
    if pick == 7 and rarely(draw, 3):
        return draw(st.sampled_from([[], "x", Decimal(1), {"stock": Raw("[" * 127 + "]" * 127)}]))
    return {k: draw(st.one_of(numbers, numbers, json_values))
            for k in draw(st.lists(st.sampled_from(["stock", "price", "name", "label"]), max_size=3, unique=True))}


@st.composite
def default_writes(draw, op=None):
    op = op or draw(st.sampled_from(["upsert", "upsert", "upsert", "delete"]))
    id = draw(st.sampled_from(DEFAULT_IDS))
    w = Write(op, id, None, draw(timestamps), draw(st.sampled_from(CLIENTS)), draw(st.sampled_from(MUTATIONS)))
    if op == "upsert":
        w.payload = draw(default_payloads(id))
        w.base = draw(bases())
    return w


# The tracked table: typed columns, each with values that fit and values that do not.
ITEMS_DDL = """
CREATE TABLE public.items (
    sku        bigint PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    stock      integer NOT NULL DEFAULT 0 CHECK (stock >= 0),
    price      numeric(10,2),
    tags       text[] NOT NULL DEFAULT '{}',
    meta       jsonb,
    flag       boolean,
    label      varchar(8),
    total      numeric GENERATED ALWAYS AS (stock * coalesce(price, 0)) STORED,
    updated_at timestamptz NOT NULL
);
SELECT inventory_sync.track('public.items');
"""
ITEM_COLUMNS = ["name", "stock", "price", "tags", "meta", "flag", "label"]
ITEM_NUMERIC = {"stock", "price"}
ITEM_IDS = ["1", "2", "3", "007"]
BAD_ITEM_IDS = ["x", "1.5", "99999999999999999999", ""]
ITEM_DEFAULTS = {"name": "", "stock": Decimal(0), "price": None, "tags": [], "meta": None, "flag": None, "label": None}

item_values = {
    "name": weighted((8, text), (2, st.sampled_from(ODD_STRINGS)), (2, numbers), (1, st.none())),
    "stock": weighted((12, st.integers(0, 50).map(Decimal)), (1, st.integers(-3, -1).map(Decimal)),
                      (2, st.sampled_from(["5", " 7 "])), (1, st.sampled_from(["x", "2147483648", Decimal("1.5"),
                                                                                Decimal("2147483648")])),
                      (1, st.none())),
    "price": weighted((10, st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False)),
                      (1, st.sampled_from([Decimal("123456789"), "1.5", "abc"])), (1, st.none())),
    "tags": weighted((8, st.lists(st.one_of(text, st.sampled_from(ODD_STRINGS), st.none()), max_size=3)),
                     (1, st.sampled_from(["notalist", None]))),
    "meta": weighted((12, json_values), (1, deep_values)),
    "flag": weighted((6, st.booleans()), (2, st.none()), (1, st.just("maybe"))),
    "label": weighted((6, st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00 "), max_size=8)),
                      (1, st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00 "), min_size=9, max_size=12)),
                      (1, st.none())),
}


@st.composite
def item_payloads(draw, sku):
    if rarely(draw, 25):
        return draw(st.sampled_from([[], "x", Decimal(3)]))
    payload = {}
    keys = draw(st.lists(st.sampled_from(ITEM_COLUMNS * 8 + ["sku", "nope", "updated_at", "total"]),
                         max_size=4, unique=True))
    for k in keys:
        if k == "sku":
            payload[k] = draw(st.sampled_from([Decimal(sku) if rust_i64(sku) is not None else sku, sku, Decimal(99)]))
        elif k in item_values:
            payload[k] = draw(item_values[k])
        else:
            payload[k] = draw(json_values)
    return payload


@st.composite
def item_writes(draw, op=None):
    op = op or draw(st.sampled_from(["upsert", "upsert", "upsert", "delete"]))
    sku = draw(weighted((20, st.sampled_from(ITEM_IDS)), (1, st.sampled_from(BAD_ITEM_IDS))))
    w = Write(op, sku, None, draw(timestamps), draw(st.sampled_from(CLIENTS)), draw(st.sampled_from(MUTATIONS)))
    if op == "upsert":
        w.payload = draw(item_payloads(sku))
        w.base = draw(bases())
    return w


# ---------------------------------------------------------------------------------------------
# Tracked values: what a column makes of a JSON value (as src/convert.rs hands it to the type's
# input function), or the SQLSTATE it refuses it with.

class Refused(Exception):
    def __init__(self, sqlstate):
        self.sqlstate = sqlstate


def serde_text(v):
    """A JSON value as serde_json writes it after reading jsonb_out: keys sorted bytewise,
    numbers as numeric_out prints them, compact."""
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + serde_text(v[k])
                              for k in sorted(v, key=utf8_key)) + "}"
    if isinstance(v, list):
        return "[" + ",".join(serde_text(x) for x in v) + "]"
    if isinstance(v, Decimal):
        return numeric_text(v)
    if isinstance(v, Raw):
        return serde_text(loads(v.text))
    return dumps(v)


def scalar_text(v):
    """The text src/convert.rs input_text hands a scalar column's input function."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return numeric_text(v)
    if isinstance(v, str):
        return v
    return serde_text(v)


def item_value(col, v):
    """The stored value (as to_jsonb shows it) of JSON value v in column col, or Refused."""
    if v is None:
        return None
    if col == "meta":
        return v
    if col == "tags":
        if not isinstance(v, list) or any(isinstance(x, (list, dict)) for x in v):
            raise Refused({"22P02"})
        return [None if x is None else scalar_text(x) for x in v]
    t = scalar_text(v)
    if col in ("name",):
        return t
    if col == "label":
        if len(t) > 8:
            raise Refused({"22001"})
        return t
    if col == "flag":
        low = t.strip().lower()
        if low in ("t", "true", "y", "yes", "on", "1"):
            return True
        if low in ("f", "false", "n", "no", "off", "0"):
            return False
        raise Refused({"22P02"})
    if col == "stock":
        s = t.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", s):
            raise Refused({"22P02"})
        if not -(2**31) <= int(s) < 2**31:
            raise Refused({"22003"})
        return Decimal(int(s))
    if col == "price":
        try:
            d = Decimal(t.strip())
        except ArithmeticError:
            raise Refused({"22P02"})
        if not d.is_finite():
            raise Refused({"22P02"})
        with localcontext() as ctx:
            ctx.prec = 100_000
            q = d.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
        if abs(q) >= 10**8:
            raise Refused({"22003"})
        return q
    raise AssertionError(col)


def int8(text):
    """int8in: the bigint, or Refused."""
    t = text.strip(" \t\n\r\f\v")
    if not re.fullmatch(r"[+-]?[0-9]+", t):
        return Refused({"22P02"})
    n = int(t)
    return n if -(2**63) <= n < 2**63 else Refused({"22003"})


def item_constraint(col, value):
    """The SQLSTATE a stored value breaks (NOT NULL, CHECK), if any."""
    if value is None and col in ("name", "stock", "tags"):
        return "23502"
    if col == "stock" and value is not None and value < 0:
        return "23514"
    return None


# ---------------------------------------------------------------------------------------------
# The state machine.

def us_times(answer):
    """An answer with its updated_at (and server_data's) as microseconds."""
    a = dict(answer)
    if isinstance(a.get("updated_at"), str):
        a["updated_at"] = parse_ts(a["updated_at"])
    sd = a.get("server_data")
    if isinstance(sd, dict) and isinstance(sd.get("updated_at"), str):
        a["server_data"] = dict(sd, updated_at=parse_ts(sd["updated_at"]))
    return a


def sqlstate_of(e):
    return getattr(e, "sqlstate", None) or getattr(getattr(e, "diag", None), "sqlstate", None)


class SyncCalls(RuleBasedStateMachine):
    conn = None

    @initialize()
    def reset(self):
        c = self.conn
        # Policies through set_policy, so every cache hears of it.
        for tbl, fld in c.execute("SELECT tbl::text, field FROM inventory_sync.field_policies").fetchall():
            c.execute("SELECT inventory_sync.set_policy(%s, %s, 'lww')", (tbl, fld))
        c.execute("TRUNCATE inventory_sync.inventory, inventory_sync.conflicts, inventory_sync.mutations, "
                  "inventory_sync.changes, inventory_sync.purge_horizon, public.items")
        self.rows = {}              # the default table: id -> Row
        self.policies = {}          # default table: field -> policy (not lww)
        self.item_policies = {}
        self.mutations = {}         # (table, row_id, client_id, mutation_id) -> first answer (parsed JSON)
        self.cursors = []           # (cursor, number of purges before it was handed out)
        self.purges = 0
        self.history = []
        self.journal_seen = c.execute("SELECT coalesce(max(conflict_id), 0) FROM inventory_sync.conflicts").fetchone()[0]

    # -- helpers --------------------------------------------------------------------------------

    def call(self, sql, params):
        """Run one call; answers (parsed JSON or None, SQLSTATE or None)."""
        CALLS["n"] += 1
        try:
            row = self.conn.execute(sql, params).fetchone()
        except psycopg.Error as e:
            if self.conn.closed or self.conn.broken:
                pytest.fail(f"connection lost: {e}\n{sql} {params}")
            state = sqlstate_of(e)
            assert state is not None, f"error without SQLSTATE: {e}"
            assert state != "XX000", f"internal error: {e}\n{sql}\n{params}"
            assert not self.conn.broken, f"connection broken: {e}"
            count(f"{sql.split('(')[0].split('.')[-1]} error {state}")
            return None, state, str(e)
        assert row is not None
        ans = loads(row[0]) if row[0] else None
        name = sql.split('(')[0].split('.')[-1]
        if isinstance(ans, dict) and "status" in ans:
            count(f"{name} {ans['status']}{' duplicate' if ans.get('duplicate') else ''}")
        elif isinstance(ans, list):
            for o in ans:
                count(f"{name} outcome {o.get('status')} {o.get('sqlstate', '')}{' duplicate' if o.get('duplicate') else ''}")
        else:
            count(f"{name} ok")
        return (None if not row[0] else loads(row[0])), None, None

    def new_journal(self):
        rows = self.conn.execute(
            "SELECT row_id, table_name, reason, op, client_payload::text, "
            "to_jsonb(client_ts)#>>\'{}\', client_id, mutation_id, "
            "server_data::text, conflict_id FROM inventory_sync.conflicts WHERE conflict_id > %s ORDER BY conflict_id",
            (self.journal_seen,)).fetchall()
        if rows:
            self.journal_seen = rows[-1][-1]
        return [(r[0], r[1], r[2], r[3], norm(loads(r[4])), parse_ts(r[5]), r[6], r[7],
                 None if r[8] is None else loads(r[8])) for r in rows]

    def db_rows(self):
        out = {}
        for id, data, ts, by, deleted, clocks in self.conn.execute(
                "SELECT id, data::text, to_jsonb(updated_at)#>>\'{}\', "
                "updated_by, deleted, field_clocks::text FROM inventory_sync.inventory"):
            out[id] = Row(loads(data), parse_ts(ts), by, loads(clocks), deleted)
        return out

    def check_model(self):
        db = self.db_rows()
        assert set(db) == set(self.rows), f"rows {sorted(db)} but the model has {sorted(self.rows)}"
        for id, m in self.rows.items():
            d = db[id]
            assert (norm(d.data), d.ts, d.by, d.deleted, norm(d.clocks)) == \
                   (norm(m.data), m.ts, m.by, m.deleted, norm(m.clocks)), f"row {id}: stored {d}, model {m}"

    def item_state(self, row_id):
        """The tracked row as merge sees it: Stored, or None without row and tombstone."""
        r = self.conn.execute(
            "SELECT to_jsonb(i.*)::text, to_jsonb(i.updated_at)#>>\'{}\', "
            "c.client_id, c.field_clocks::text FROM public.items i LEFT JOIN inventory_sync.changes c "
            "ON inventory_sync.table_of(c.table_id) = 'public.items'::regclass AND c.row_id = i.sku::text WHERE i.sku::text = %s", (row_id,)).fetchone()
        if r:
            fields = loads(r[0])
            fields.pop("sku"), fields.pop("updated_at")
            clocks, floor = split_floor(loads(r[3]) if r[3] else {})
            return Stored(fields, (parse_ts(r[1]), r[2]), clocks, False, False, floor)
        t = self.conn.execute(
            "SELECT to_jsonb(ts)#>>\'{}\', client_id FROM inventory_sync.changes "
            "WHERE inventory_sync.table_of(table_id) = 'public.items'::regclass AND row_id = %s AND op = 'delete'", (row_id,)).fetchone()
        return Stored({}, (parse_ts(t[0]), t[1]), {}, True, False) if t else None

    def item_row(self, row_id):
        r = self.conn.execute("SELECT to_jsonb(i.*)::text FROM public.items i WHERE sku::text = %s", (row_id,)).fetchone()
        return None if r is None else loads(r[0])

    # -- the default table's model ------------------------------------------------------------

    def expect_default(self, w, now):
        """The model's decision for a write to the default table."""
        exp = self._expect_default(w, now)
        exp.deep = w.op == "upsert" and too_deep(w.payload, w.base)
        row = self.rows.get(w.id)
        merging = w.op == "upsert" and isinstance(w.payload, dict) and any(k in self.policies for k in w.payload)
        exp.deep_row = merging and deep_merge(row.server_data(w.id) if row else None, w.payload)
        return exp

    def _expect_default(self, w, now):
        def err(*states):
            return Expect(error=set(states))

        if isinstance(w.ts, Raw):
            return err("22007", "22008")
        if w.ts is None or (w.op == "upsert" and w.payload is None):
            return err("22004")
        if w.ts in ("infinity", "-infinity"):
            return err("22008")
        if w.mutation_id is not None and w.client_id is None:
            return err("22023")
        payload = w.payload
        if w.op == "upsert":
            if isinstance(payload, Raw):
                payload = loads(payload.text)
            if not isinstance(payload, dict):
                return err("22023")
            if "id" in payload and payload["id"] is not None:
                v = payload["id"]
                if isinstance(v, Decimal):
                    ok = rust_i64(numeric_text(v)) == w.id
                elif isinstance(v, str):
                    ok = rust_i64(v) == w.id
                else:
                    ok = False
                if not ok:
                    return err("22023")
            if w.base is not None and not isinstance(w.base, dict):
                return err("22023")
        else:
            payload = {}
        key = (DEFAULT, str(w.id), w.client_id, w.mutation_id) if w.client_id is not None and w.mutation_id is not None else None
        if key in self.mutations:
            return Expect(answer=dict(self.mutations[key], duplicate=True))
        row = self.rows.get(w.id)
        clock = (w.ts, w.client_id)
        journal = lambda reason, p, sd: (str(w.id), DEFAULT, reason, w.op, norm(p), w.ts, w.client_id, w.mutation_id, sd)
        if w.ts > now + MAX_SKEW_US:
            sd = row.server_data(w.id) if row else None
            return Expect(answer={"status": "rejected", "id": Decimal(w.id)}, journal=[journal("clock_skew", payload, sd)])
        fields = {k: v for k, v in payload.items() if k not in ("id", "updated_at")}
        merging = w.op == "upsert" and any(k in self.policies for k in fields)
        if not merging:
            if row is not None and not beats(clock, (row.ts, row.by)):
                sd = row.server_data(w.id)
                ans = {"id": Decimal(w.id), "status": "conflict", "server_data": sd}
                return Expect(answer=ans, journal=[journal("stale", payload, sd)], remember=key)
            if w.op == "delete":
                # A tombstone keeps its own clock as the floor of the fields' clocks.
                new = Row({}, w.ts, w.client_id, with_floor({}, (w.ts, w.client_id)), True)
                ans = {"id": Decimal(w.id), "status": "applied", "deleted": True, "updated_at": w.ts}
            else:
                if row is None:
                    new = Row(dict(fields), w.ts, w.client_id, {}, False)
                elif row.deleted:
                    new = Row(dict(fields), w.ts, w.client_id, with_floor({}, (row.ts, row.by)), False)
                else:
                    data = dict(row.data)
                    data.update(fields)
                    clocks = {k: v for k, v in row.clocks.items() if k not in fields}
                    new = Row(data, w.ts, w.client_id, clocks, False)
                ans = {"id": Decimal(w.id), "status": "applied", "created": row is None, "updated_at": w.ts}
            return Expect(answer=ans, new_row=new, remember=key)
        if row is None:
            stored = None
        else:
            clocks, floor = split_floor(row.clocks)
            stored = Stored(row.data, (row.ts, row.by), clocks, row.deleted, True, floor)
        try:
            m = merge(stored, clock, fields, w.base, lambda k: self.policies.get(k, LWW))
        except NotANumber:
            return err("22023")
        extra = {"delta_without_base": m.without_base} if m.without_base else {}
        if m.status == "conflict":
            sd = row.server_data(w.id)
            ans = {"id": Decimal(w.id), "status": "conflict", "server_data": sd, **extra}
            return Expect(answer=ans, journal=[journal("stale", payload, sd)], remember=key)
        new = Row(m.fields, m.row[0], m.row[1], with_floor(m.clocks, m.floor), False)
        ans = {"id": Decimal(w.id), "status": "applied", "created": row is None, "updated_at": m.row[0], **extra}
        j = []
        if m.status == "merged":
            sd = new.server_data(w.id)
            ans.update(status="merged", applied=m.applied, lost=m.lost, server_data=sd)
            j = [journal("stale", {k: fields[k] for k in m.lost}, sd)]
        return Expect(answer=ans, journal=j, new_row=new, remember=key)

    def check_answer(self, got, want, where):
        """Compare an answer with the model's (timestamps as microseconds)."""
        got, want = us_times(got), us_times(want)
        # Every answer carries the row's version, the server's clock (tests/concurrency/test_versions.py
        # and versions.sql check what it is): here its form, then it is left out.
        version = got.pop("version", "missing") if isinstance(got, dict) else None
        assert version is None or re.fullmatch(r"[0-9a-f]{16}", version), f"{where}: version {version} in {got}"
        if isinstance(want, dict) and "version" in want:
            # A replayed answer (a duplicate) is the first answer, its version too.
            want = dict(want)
            assert version == want.pop("version"), f"{where}: version {version}, first answered {want}"
        if want.get("status") == "rejected" and not want.get("duplicate"):
            assert got.get("status") == "rejected" and got.get("reason") == "clock_skew", f"{where}: {got}"
            assert set(got) == {"id", "status", "reason", "message", "client_ts", "server_time", "ahead_by_seconds",
                                "max_clock_skew_seconds"}, f"{where}: {got}"
            assert got["ahead_by_seconds"] > 300
            return
        assert norm(got) == norm(want), f"{where}: answered {got}\n  the model says {want}"

    def apply_default(self, w, exp, got, state, where):
        """Check one default-table write's outcome against the model, then update the model."""
        if state == "54001" and exp.deep:
            return []
        if state == "54001" and exp.deep_row and "deep_row" in KNOWN_BUGS:
            count("known bug deep_row")
            return []
        if exp.error is not None:
            assert state in exp.error, f"{where}: expected an error {exp.error}, got {state or got}"
            return []
        assert state is None, f"{where}: unexpected error {state}; the model answers {exp.answer}"
        self.check_answer(got, exp.answer, where)
        if exp.new_row != "same":
            self.rows[w.id] = exp.new_row
        if exp.remember is not None:
            self.mutations[exp.remember] = got
        return exp.journal

    def check_journal(self, expected, where, extra_count=0, extra=()):
        """The journal gained exactly `expected` (model rows, default table) plus `extra_count`
        rows of the tracked table (`extra`: (row_id, reason) each, when known)."""
        got = self.new_journal()
        mine = [j for j in got if j[1] == DEFAULT]
        others = [j for j in got if j[1] != DEFAULT]
        def key(j):
            sd = j[8]
            if isinstance(sd, dict) and isinstance(sd.get("updated_at"), str):
                sd = dict(sd, updated_at=parse_ts(sd["updated_at"]))
            return (*j[:8], norm(sd))
        want = sorted((key(j) for j in expected), key=repr)
        have = sorted((key(j) for j in mine), key=repr)
        assert have == want, f"{where}: journal rows {have}\n  the model expects {want}"
        assert len(others) == extra_count, f"{where}: {len(others)} tracked journal rows, answers say {extra_count}"
        if extra:
            assert sorted((j[0], j[2]) for j in others) == sorted(extra), f"{where}: tracked journal {others}"

    # -- the tracked table's predictions --------------------------------------------------------

    def expect_item(self, w, now):
        """The decision for a write to the tracked table: Expect with an error set, or with the
        answer's status, applied and lost (and, for an applied lww upsert, the columns)."""
        exp = self._expect_item(w, now)
        exp.deep = w.op == "upsert" and too_deep(w.payload, w.base)
        return exp

    def _expect_item(self, w, now):
        def err(*states):
            return Expect(error=set(states), table=ITEMS)
        if isinstance(w.ts, Raw):
            return err("22007", "22008")
        if w.ts is None or (w.op == "upsert" and w.payload is None):
            return err("22004")
        if w.ts in ("infinity", "-infinity"):
            return err("22008")
        if w.mutation_id is not None and w.client_id is None:
            return err("22023")
        payload = w.payload if w.op == "upsert" else {}
        if isinstance(payload, Raw):
            payload = loads(payload.text)
        if w.op == "upsert" and not isinstance(payload, dict):
            return err("22023")
        if w.op == "upsert" and w.base is not None and not isinstance(w.base, dict):
            return err("22023")
        sku = int8(w.id)
        if isinstance(sku, Refused):
            return err(*sku.sqlstate)
        row_id = str(sku)
        values = {}
        for k in sorted(payload, key=utf8_key):
            v = payload[k]
            if k == "nope":
                return err("42703")
            if k == "sku":
                given = None if v is None else int8(scalar_text(v))
                if isinstance(given, Refused):
                    return err(*given.sqlstate)
                if given is not None and given != sku:
                    return err("22023")
            elif k == "updated_at":
                return err("22023")
            elif k == "total":
                return err("428C9")
            else:
                try:
                    values[k] = item_value(k, v)
                except Refused as e:
                    return err(*e.sqlstate)
        key = (ITEMS, row_id, w.client_id, w.mutation_id) if w.client_id is not None and w.mutation_id is not None else None
        if key in self.mutations:
            return Expect(answer=dict(self.mutations[key], duplicate=True), table=ITEMS)
        stored = self.item_state(row_id)
        clock = (w.ts, w.client_id)
        if w.ts > now + MAX_SKEW_US:
            return Expect(answer={"status": "rejected"}, journal=[(row_id, "clock_skew")], table=ITEMS)

        def refused(broken):
            # The table's rules refuse the write: NOT NULL is checked before CHECK.
            state = "23502" if "23502" in broken else "23514"
            return Expect(answer={"status": "rejected", "reason": "constraint", "sqlstate": state},
                          journal=[(row_id, "constraint")], remember=key, table=ITEMS)
        fields = {k: v for k, v in payload.items() if k != "sku"}
        merging = w.op == "upsert" and any(k in self.item_policies for k in fields)
        if not merging:
            live = stored is not None and not stored.deleted
            if stored is not None and not beats(clock, stored.row):
                return Expect(answer={"status": "conflict"}, journal=[(row_id, "stale")], remember=key, table=ITEMS)
            if w.op == "delete":
                return Expect(answer={"status": "applied", "deleted": True}, remember=key, table=ITEMS)
            written = dict(values) if live else dict(ITEM_DEFAULTS, **values)
            broken = {item_constraint(c, v) for c, v in written.items()} - {None}
            if broken:
                return refused(broken)
            return Expect(answer={"status": "applied", "created": not live}, remember=key, table=ITEMS,
                          new_row=written)
        try:
            m = merge(stored, clock, fields, w.base, lambda k: self.item_policies.get(k, LWW))
        except NotANumber:
            return err("22023")
        if m.status == "conflict":
            return Expect(answer={"status": "conflict"}, journal=[(row_id, "stale")], remember=key, table=ITEMS)
        live = stored is not None and not stored.deleted
        written = {} if live else dict(ITEM_DEFAULTS)
        bad_values = set()
        for k in m.applied:
            try:
                written[k] = item_value(k, m.fields[k])
            except Refused as e:
                bad_values |= e.sqlstate
        if bad_values:
            return err(*bad_values)
        broken = {item_constraint(c, v) for c, v in written.items()} - {None}
        if broken:
            return refused(broken)
        ans = {"status": m.status, "created": not live}
        j = []
        if m.status == "merged":
            ans.update(applied=m.applied, lost=m.lost)
            j = [(row_id, "stale")]
        return Expect(answer=ans, journal=j, remember=key, table=ITEMS, new_row=written)

    def check_item(self, w, exp, got, state, before, where):
        merging = w.op == "upsert" and isinstance(w.payload, dict) and any(k in self.item_policies for k in w.payload)
        known = merging and deep_merge(before, w.payload) and "deep_row" in KNOWN_BUGS
        if state == "54001" and (exp.deep or known):
            count("known bug deep_row") if known and not exp.deep else None
            assert self.item_row(str(int8(w.id))) == before, f"{where}: refused, but the row changed"
            return []
        if exp.error is not None:
            assert state in exp.error, f"{where}: expected an error {exp.error}, got {state or got}"
            return []
        assert state is None, f"{where}: unexpected error {state}; expected {exp.answer}"
        if exp.answer.get("duplicate"):
            assert norm(got) == norm(exp.answer), f"{where}: duplicate answered {got}, first answer {exp.answer}"
            assert self.item_row(str(int8(w.id))) == before, f"{where}: a duplicate changed the row"
            return []
        for k, v in exp.answer.items():
            assert norm(got.get(k)) == norm(v), f"{where}: {k} is {got.get(k)}, expected {v} ({got})"
        row_id = str(int8(w.id))
        after = self.item_row(row_id)
        status = got["status"]
        if status in ("conflict", "rejected"):
            assert after == before, f"{where}: a {status} changed the row: {before} -> {after}"
        elif w.op == "delete":
            assert after is None, f"{where}: deleted row still there: {after}"
        else:
            assert after is not None and after["sku"] == Decimal(row_id), f"{where}: no row after {got}"
            if isinstance(exp.new_row, dict):
                for c, v in exp.new_row.items():
                    assert norm(after[c]) == norm(v), f"{where}: column {c} is {after[c]!r}, expected {v!r}"
        if exp.remember is not None:
            self.mutations[exp.remember] = got
        return exp.journal

    # -- rules ---------------------------------------------------------------------------------

    def do_default(self, w, where="default"):
        now = now_us()
        exp = self.expect_default(w, now)
        if w.op == "upsert":
            got, state, msg = self.call(
                "SELECT inventory_sync.sync_upsert(%s, %s::jsonb, %s::timestamptz, %s, %s, %s::jsonb)::text",
                (w.id, None if w.payload is None else dumps(w.payload), ts_param(w.ts), w.client_id, w.mutation_id,
                 None if w.base is None else dumps(w.base)))
        else:
            got, state, msg = self.call("SELECT inventory_sync.sync_delete(%s, %s::timestamptz, %s, %s)::text",
                                        (w.id, ts_param(w.ts), w.client_id, w.mutation_id))
        where = f"{where} {w} -> {got or msg}"
        journal = self.apply_default(w, exp, got, state, where)
        self.check_journal(journal, where)
        self.check_model()

    def do_item(self, w, where="items"):
        now = now_us()
        exp = self.expect_item(w, now)
        sku = int8(w.id)
        before = None if isinstance(sku, Refused) else self.item_row(str(sku))
        if w.op == "upsert":
            got, state, msg = self.call(
                "SELECT inventory_sync.sync_upsert_in('public.items', %s, %s::jsonb, %s::timestamptz, %s, %s, %s::jsonb)::text",
                (w.id, None if w.payload is None else dumps(w.payload), ts_param(w.ts), w.client_id, w.mutation_id,
                 None if w.base is None else dumps(w.base)))
        else:
            got, state, msg = self.call(
                "SELECT inventory_sync.sync_delete_in('public.items', %s, %s::timestamptz, %s, %s)::text",
                (w.id, ts_param(w.ts), w.client_id, w.mutation_id))
        where = f"{where} {w} -> {got or msg}"
        journal = self.check_item(w, exp, got, state, before, where)
        self.check_journal([], where, extra_count=len(journal), extra=journal)
        self.check_model()

    def write(self, w):
        w.ts = resolve_ts(w.ts)
        if isinstance(w.id, int):
            self.history.append(("default", w))
            self.do_default(w)
        else:
            self.history.append(("items", w))
            self.do_item(w)

    # Writes are most of the calls (Hypothesis picks rules evenly: hence several).
    @rule(w=default_writes())
    def default_write(self, w):
        self.write(w)

    @rule(w=default_writes(op="upsert"))
    def default_upsert(self, w):
        self.write(w)

    @rule(w=st.one_of(default_writes(), item_writes()))
    def some_write(self, w):
        self.write(w)

    @rule(w=item_writes())
    def item_write(self, w):
        self.write(w)

    @precondition(lambda self: self.history)
    @rule(pick=st.integers(0, 10**6))
    def retry(self, pick):
        """An earlier call again, exactly (a device retrying: same client_id and mutation_id)."""
        kind, w = self.history[pick % len(self.history)]
        if kind == "default":
            self.do_default(w, "retry")
        else:
            self.do_item(w, "retry")

    @rule(where=weighted(
              (4, st.tuples(st.just(DEFAULT), st.sampled_from(["stock", "price", "name", "note"]))),
              (4, st.tuples(st.just(ITEMS), st.sampled_from(["stock", "price", "name", "meta", "label", "flag"]))),
              (1, st.tuples(st.sampled_from([DEFAULT, ITEMS]), st.sampled_from(["tags", "total", "sku", "id", "updated_at", "nope"])))),
          policy=weighted((20, st.sampled_from(POLICIES)), (1, st.just("bogus"))))
    def set_policy(self, where, policy):
        table, field = where
        got, state, msg = self.call("SELECT inventory_sync.set_policy(%s, %s, %s)::text", (table, field, policy))
        if policy == "bogus":
            want = "22023"
        elif table == DEFAULT:
            want = "22023" if field in ("id", "updated_at") else None
        elif field not in ITEM_COLUMNS + ["total", "sku", "updated_at"]:
            want = "42703"
        elif field in ("sku", "updated_at"):
            want = "22023"
        elif field == "total":
            want = "428C9"
        elif policy == DELTA and field not in ITEM_NUMERIC:
            want = "42804"
        else:
            want = None
        assert state == want, f"set_policy({table}, {field}, {policy}): {state or 'ok'}, expected {want or 'ok'} {msg}"
        if want is None:
            policies = self.policies if table == DEFAULT else self.item_policies
            if policy == LWW:
                policies.pop(field, None)
            else:
                policies[field] = policy

    @rule(changes=st.lists(st.one_of(default_writes(), default_writes(), item_writes(),
                                     st.sampled_from(["bad"] * 12)), min_size=1, max_size=8),
          bad=st.lists(st.sampled_from(range(12)), min_size=8, max_size=8),
          atomic=st.booleans())
    def push(self, changes, bad, atomic):
        """A sync_push batch mixing both tables and invalid changes."""
        now = now_us()
        items, kinds = [], []
        for i, c in enumerate(changes):
            if c == "bad":
                item, exp = self.bad_change(bad[i])
                items.append(item)
                kinds.append(exp)
                continue
            c.ts = resolve_ts(c.ts)
            item = {"id": Decimal(c.id)} if isinstance(c.id, int) else {"table": "items", "id": c.id}
            item["client_ts"] = ts_param(c.ts)
            if c.op == "delete":
                item["op"] = "delete"
            else:
                item["payload"] = c.payload
                if c.base is not None:
                    item["base"] = c.base
            for k in ("client_id", "mutation_id"):
                if getattr(c, k) is not None:
                    item[k] = getattr(c, k)
            items.append(item)
            kinds.append(c)
        # Rows as they are before the push, for known bug deep_row.
        deep_rows = {k.id for k in kinds if isinstance(k, Write) and isinstance(k.id, str) and not isinstance(int8(k.id), Refused)
                     and depth(self.item_row(str(int8(k.id)))) >= 126}
        got, state, msg = self.call("SELECT inventory_sync.sync_push(%s::jsonb, %s)::text", (dumps(items), atomic))
        where = f"push(atomic={atomic}) {dumps(items)} -> {got or msg}"
        if state is not None:
            assert atomic, f"{where}: a non-atomic push failed as a whole: {state}"
            assert state in ALLOWED_ITEMS | {"54001"}, f"{where}: SQLSTATE {state}"
            assert re.search(r"change \d+: ", msg), f"{where}: message without the change's index"
            # Some change must be invalid: a bad one, one the model refuses, or a tracked one.
            assert any(isinstance(k, Expect) or isinstance(k.id, str) or self.push_expect(k, now).error
                       or too_deep(k.payload, k.base) or self.push_expect(k, now).deep_row
                       for k in kinds), f"{where}: every change is valid"
            self.check_journal([], where)
            self.check_model()
            return
        assert isinstance(got, list) and len(got) == len(items), f"{where}: not one outcome per change"
        # Changes run in row order, those of one row in the order given; rows are independent in
        # the model, so replaying in the order given decides the same.
        journal, item_journal = [], 0
        for i, (out, k) in enumerate(zip(got, kinds)):
            w_here = f"{where}\n  change {i}: {out}"
            assert isinstance(out, dict) and out.get("status") in ("applied", "conflict", "merged", "rejected", "error"), w_here
            if atomic:
                assert out["status"] != "error", w_here
            if out["status"] == "error":
                assert set(out) == {"status", "id", "sqlstate", "message"}, w_here
                assert norm(out["id"]) == norm(items[i].get("id") if isinstance(items[i], dict) else None), w_here
            if isinstance(k, Expect):                       # an invalid change
                assert out["status"] == "error" and out["sqlstate"] in k.error, f"{w_here}: expected {k.error}"
                continue
            if isinstance(k.id, int):                       # the default table: the model decides
                exp = self.push_expect(k, now)
                state_i = out["sqlstate"] if out["status"] == "error" else None
                journal += self.apply_default(k, exp, None if state_i else out, state_i, w_here)
                continue
            if out["status"] == "error":
                known = "deep_row" in KNOWN_BUGS and (k.id in deep_rows or deep_merge(None, k.payload))
                assert out["sqlstate"] in ALLOWED_ITEMS | ({"54001"} if too_deep(k.payload, k.base) or known else set()), w_here
                continue
            if out.get("duplicate"):
                continue
            if out["status"] in ("conflict", "rejected", "merged"):
                item_journal += 1
            # A clock rejection is not remembered; a refusal by the table's rules is.
            clock = out["status"] == "rejected" and out.get("reason") == "clock_skew"
            if not clock and k.client_id is not None and k.mutation_id is not None:
                self.mutations.setdefault((ITEMS, str(int8(k.id)), k.client_id, k.mutation_id), out)
        self.check_journal(journal, where, extra_count=item_journal)
        self.check_model()

    def push_expect(self, w, now):
        """The model's decision for a default-table change in a push: as the single call, but a
        missing client_ts or payload is a change of the wrong shape."""
        if w.ts is None or (w.op == "upsert" and (w.payload is None or w.payload == Raw("null"))):
            return Expect(error={"22023"})
        if w.op == "upsert" and w.base is not None and not isinstance(w.base, dict):
            return Expect(error={"22023"})
        return self.expect_default(w, now)

    def bad_change(self, which):
        """An invalid change and the SQLSTATEs its error outcome may carry."""
        ts = ts_text(BASE_US)
        bad = [
            ({"id": Decimal(1), "payload": {}, "client_ts": ts, "colour": "red"}, {"22023"}),
            ({"payload": {}, "client_ts": ts}, {"22023"}),
            ({"id": Decimal(1), "payload": {}}, {"22023"}),
            ({"id": Decimal(1), "client_ts": ts}, {"22023"}),
            ({"op": "delete", "id": Decimal(1), "client_ts": ts, "payload": {}}, {"22023"}),
            ({"op": "merge", "id": Decimal(1), "client_ts": ts, "payload": {}}, {"22023"}),
            ({"id": [Decimal(1)], "client_ts": ts, "payload": {}}, {"22023"}),
            ({"id": "x", "client_ts": ts, "payload": {}}, {"22023"}),
            ({"id": Decimal(1), "client_ts": "yesterday-ish", "payload": {}}, {"22007", "22008"}),
            ({"table": "no_such_table", "id": "1", "client_ts": ts, "payload": {}}, {"42P01"}),
            ({"table": "items", "id": "1", "client_ts": ts, "payload": {"nope": Decimal(1)}}, {"42703"}),
            ("not an object", {"22023"}),
        ][which]
        return bad[0], Expect(error=bad[1])

    @rule(choice=st.integers(0, 9), pick=st.integers(0, 10**6),
          lim=st.sampled_from([1, 2, 3, 5, 1000, 100000, 0, -1, 100001, None]))
    def pull(self, choice, pick, lim):
        b64 = lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")
        epoch = -1                          # a cursor sync_pull did not hand out: no epoch of its own
        if choice < 3 and self.cursors:
            since, epoch = self.cursors[pick % len(self.cursors)]
        elif choice < 5:
            since = None
        else:
            since = [b64("1:0:0:"), b64("1:18446744073709551615:4294967295:zz"), "", "!!!", b64("2:1:2:x"),
                     b64("1:+5:-0:x"), "MTo", b64("2:12345:1:0:0:"), b64("2:x:1:0:0:")][pick % 9]
        got, state, msg = self.call("SELECT inventory_sync.sync_pull(%s, %s)::text", (since, lim))
        where = f"pull({since!r}, {lim}) -> {got or msg}"
        if lim is None:
            assert state == "22004", where
            return
        if not 1 <= lim <= 100000:
            assert state == "22023", where
            return
        if state == "22023":
            assert epoch == -1, f"{where}: a cursor sync_pull handed out is refused"
            return
        # A cursor handed out before the last purge, below its horizon, may have missed a purged
        # tombstone: refused. One handed out since (whatever its position), or none, never is.
        stale = since is not None and epoch != self.purges and self.expired(since)
        assert (state == "55000") == stale, f"{where}: {'refused' if state else 'accepted'}, but stale is {stale}"
        if state == "55000":
            return
        assert state is None, f"{where}: unexpected {state}"
        assert set(got) == {"changes", "cursor", "has_more"}, where
        assert len(got["changes"]) <= lim and (not got["has_more"] or len(got["changes"]) == lim), where
        self.cursors.append((got["cursor"], self.purges))
        for ch in got["changes"]:
            self.check_feed_entry(ch, where)

    def expired(self, since):
        h = self.conn.execute("SELECT position, table_id, row_id FROM inventory_sync.purge_horizon").fetchone()
        if h is None or since is None:
            return False
        try:
            raw = base64.urlsafe_b64decode(since + "=" * (-len(since) % 4)).decode()
            if raw.startswith("3:"):
                _, _epoch, _era, position, table_id, row = raw.split(":", 5)   # 3:epoch:era:position:table_id:row
                position, table_id = int(position), int(table_id)
            else:
                # The first release's forms (1:xid:oid:row, 2:epoch:1:…): after every table at
                # that position.
                if raw.startswith("2:"):
                    raw = raw.split(":", 2)[2]
                _, position, _oid, _row = raw.split(":", 3)
                position, table_id, row = int(position), 2**31 - 1, ""
        except ValueError:
            return False
        return (position, table_id, row.encode()) < (int(h[0]), int(h[1]), h[2].encode())

    def check_feed_entry(self, ch, where):
        assert set(ch) == {"table", "id", "op", "data", "updated_at", "version"}, f"{where}: entry {ch}"
        assert re.fullmatch(r"[0-9a-f]{16}", ch["version"]), f"{where}: entry {ch}"
        assert ch["op"] in ("upsert", "delete"), where
        if ch["table"] == DEFAULT:
            row = self.rows.get(int(ch["id"]))
            assert row is not None, f"{where}: pulled row {ch['id']} the model does not have"
            assert (ch["op"] == "delete") == row.deleted, f"{where}: {ch} vs model {row}"
            assert parse_ts(ch["updated_at"]) == row.ts, f"{where}: {ch} vs model {row}"
            if not row.deleted:
                assert norm(ch["data"]) == norm(row.data), f"{where}: {ch} vs model {row}"
            else:
                assert ch["data"] is None, where
        else:
            assert ch["table"] == ITEMS, where
            if ch["op"] == "upsert":
                assert ch["data"]["sku"] == ch["id"], where

    @rule(lim=st.sampled_from([1, 2, 7, 1000]))
    def pull_everything(self, lim):
        """Walk the whole feed: every row exactly once, as it is now."""
        since, seen = None, []
        for _ in range(200):
            got, state, msg = self.call("SELECT inventory_sync.sync_pull(%s, %s)::text", (since, lim))
            assert state is None, f"pull({since}, {lim}): {msg}"
            for ch in got["changes"]:
                self.check_feed_entry(ch, f"walk lim {lim}")
            seen += [(c["table"], str(c["id"])) for c in got["changes"]]
            since = got["cursor"]
            if not got["has_more"]:
                break
        else:
            pytest.fail("the feed never ends")
        assert len(seen) == len(set(seen)), f"a row pulled twice: {seen}"
        items = {(ITEMS, r[0]) for r in self.conn.execute(
            "SELECT sku::text FROM public.items UNION SELECT row_id FROM inventory_sync.changes "
            "WHERE inventory_sync.table_of(table_id) = 'public.items'::regclass AND op = 'delete'")}
        want = {(DEFAULT, str(id)) for id in self.rows} | items
        assert set(seen) == want, f"walk: pulled {sorted(set(seen))}, rows {sorted(want)}"

    @rule(go=st.integers(0, 5))
    def purge_mutations(self, go):
        if go:
            return
        time.sleep(0.001)
        got, state, msg = self.call("SELECT inventory_sync.purge_mutations('0 seconds')::text", ())
        assert state is None, msg
        self.mutations.clear()

    @rule(go=st.integers(0, 5))
    def purge_tombstones(self, go):
        if go:
            return
        time.sleep(0.001)
        got, state, msg = self.call("SELECT inventory_sync.purge_tombstones('0 seconds')::text", ())
        assert state is None, msg
        if got:
            self.purges += 1
        self.rows = {id: r for id, r in self.rows.items() if not r.deleted}
        self.check_model()


# What the fuzzer steps around: "deep_row", the documented limit (docs/REFERENCE.md, 54001) of a
# merging write to a default-table row that holds a value nested deeper than 127 levels (the
# whole row is parsed to be merged and written back). The writes this fuzzer found failing on
# deep rows without need (answers carrying server_data, tracked rows) are fixed: see below.
KNOWN_BUGS = {"deep_row"}

# The SQLSTATEs a tracked-table change may get (docs/REFERENCE.md "Errors"): argument checks, the
# column types' own, constraints, unknown and refused keys; in a push also an unknown table.
ALLOWED_ITEMS = {"22004", "22023", "22007", "22008", "22P02", "22003", "22001", "23502", "23514", "42703", "428C9",
                 "55000", "42P01"}


@pytest.fixture(scope="module")
def conn(db):
    with connect(db) as c:
        c.execute("SET TimeZone = 'UTC'")
        c.execute(ITEMS_DDL)
        yield c


# Short mode (CI): derandomized, a fixed amount (15-40 s, with the machine loaded or not); soak:
# some 70,000 calls, random seeds (4 minutes on a quiet machine). Both can be set (..._EXAMPLES, _STEPS).
EXAMPLES = int(os.environ.get("INVENTORY_SYNC_FUZZ_EXAMPLES", 1000 if SOAK else 150))
STEPS = int(os.environ.get("INVENTORY_SYNC_FUZZ_STEPS", 100 if SOAK else 50))


def test_fuzz_sql_calls(conn):
    SyncCalls.conn = conn
    CALLS["n"] = 0
    start = time.monotonic()
    run_state_machine_as_test(SyncCalls, settings=settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        derandomize=not SOAK,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink] if SOAK
        else [Phase.explicit, Phase.generate, Phase.shrink],
    ))
    print(f"\n{CALLS['n']} SQL calls in {time.monotonic() - start:.1f} s")
    for k in sorted(STATS):
        print(f"  {STATS[k]:6d} {k}")


# ---------------------------------------------------------------------------------------------
# What the fuzzer found: regression tests for what is fixed, strict xfails for what is open
# (an xfail passes once its bug is fixed, and then must lose its mark and leave KNOWN_BUGS).

def test_deeply_nested_json(conn):
    """JSON nested deeper than serde_json reads (128 levels) is valid jsonb. Found while building
    this fuzzer: it used to end in XX000 ('jsonb_out produced invalid JSON: recursion limit exceeded') in
    sync_push, on the merging and tracked paths, and in every sync_pull once such a row was
    stored. Now: no internal error anywhere (at most 54001 where the value must be taken
    apart), and the feed keeps working."""
    deep = "[" * 300 + "]" * 300
    conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.conflicts, inventory_sync.mutations")
    failures = []
    calls = [
        ("SELECT inventory_sync.sync_push(%s::jsonb)",
         (f'[{{"id": 900, "client_ts": "2024-03-01T10:00:00Z", "payload": {{"x": {deep}}}}}]',)),
        ("SELECT inventory_sync.sync_upsert(901, %s::jsonb, '2024-03-01 10:00+00')", (f'{{"x": {deep}}}',)),
        ("SELECT inventory_sync.sync_upsert(902, '{}', '2024-03-01 10:00+00', base => %s::jsonb)", (f'{{"x": {deep}}}',)),
        ("SELECT inventory_sync.sync_upsert_in('public.items', '903', %s::jsonb, '2024-03-01 10:00+00')",
         (f'{{"meta": {deep}}}',)),
        ("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'x', 'field_lww')", ()),
        ("SELECT inventory_sync.sync_upsert(904, %s::jsonb, '2024-03-01 10:00+00')", (f'{{"x": {deep}}}',)),
        ("SELECT inventory_sync.sync_pull(NULL)", ()),
    ]
    try:
        for sql, args in calls:
            try:
                conn.execute(sql, args)
            except psycopg.Error as e:
                if sqlstate_of(e) != "54001":
                    failures.append(f"{sql}: {sqlstate_of(e)} {e}")
        # Stored directly, as an application may: the feed must still answer.
        conn.execute("INSERT INTO inventory_sync.inventory (id, data, updated_at) VALUES (905, %s::jsonb, now())",
                     (f'{{"x": {deep}}}',))
        pulled = conn.execute("SELECT inventory_sync.sync_pull(NULL)::text").fetchone()[0]
        assert '"id": 905' in pulled
        assert not failures, "\n".join(failures)
    finally:
        conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'x', 'lww')")
        conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, public.items")


def test_server_wins_null_converges(conn):
    """The same two writes of a server_wins field, one sending null, end alike in both orders
    (README: every arrival order keeps the same value). Found by the merge_orders fuzz target:
    the order W1, W2 ended null and W2, W1 true (fuzz/KNOWN_BUGS.md, fixed)."""
    conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.conflicts, inventory_sync.mutations")
    conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'a', 'server_wins')")
    try:
        w1 = ("{\"a\": true}", "2024-03-01 10:00:02+00", "dev-b")
        w2 = ("{\"a\": null}", "2024-03-01 10:00:00+00", "dev-a")
        for id, order in [(1, [w1, w2]), (2, [w2, w1])]:
            for payload, ts, client in order:
                conn.execute("SELECT inventory_sync.sync_upsert(%s, %s::jsonb, %s::timestamptz, %s)", (id, payload, ts, client))
        a = {id: v for id, v in conn.execute("SELECT id, data->'a' FROM inventory_sync.inventory")}
        assert a[1] == a[2], f"W1 then W2: a = {a[1]}; W2 then W1: a = {a[2]}"
    finally:
        conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'a', 'lww')")
        conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes")


def test_walk_from_the_beginning_after_a_purge(conn):
    """The error's HINT says: pull everything again from the beginning (since = NULL). Found by
    this fuzzer: a device doing so in pages got 'cursor is older than the last tombstone purge'
    on its second page whenever the first page ended below the newest purged tombstone (a cursor
    handed out after the purge was refused), so it could never finish its resync. Fixed with the
    purge epoch in cursors."""
    conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.purge_horizon")
    try:
        conn.execute("SELECT inventory_sync.sync_upsert(1, '{\"a\": 1}', '2024-03-01 10:00+00')")
        conn.execute("SELECT inventory_sync.sync_upsert(2, '{\"a\": 2}', '2024-03-01 10:00+00')")
        conn.execute("SELECT inventory_sync.sync_delete(3, '2024-03-01 10:00+00')")
        time.sleep(0.01)
        assert conn.execute("SELECT inventory_sync.purge_tombstones('0')").fetchone()[0] == 1
        since, pulled = None, []
        for _ in range(5):
            page = loads(conn.execute("SELECT inventory_sync.sync_pull(%s, 1)::text", (since,)).fetchone()[0])
            pulled += [int(c["id"]) for c in page["changes"]]
            since = page["cursor"]
            if not page["has_more"]:
                break
        assert pulled == [1, 2]
    finally:
        conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.purge_horizon")


# Regression test of a bug this fuzzer found (fixed): a merging write to a row whose answer
# (server_data) nests deeper than 127 levels fails with 54001; engine::finish_merge parses it with
# Jsonb::to_value
def test_merging_write_on_a_deep_row(conn):
    """A value nested 126 levels is accepted (the payload object makes 127). A later write of
    another field, on the merging path, must still be decided; it fails instead whenever its
    answer carries server_data (conflict or merged), which nests one level deeper than serde_json
    reads. The same when the merging write itself sets such a value."""
    conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.conflicts, inventory_sync.mutations")
    conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'field_lww')")
    try:
        deep = "[" * 126 + "]" * 126
        conn.execute("SELECT inventory_sync.sync_upsert(1, %s::jsonb, '2024-03-01 10:00:01+00')", ('{"note": %s}' % deep,))
        conn.execute("SELECT inventory_sync.sync_upsert(1, '{\"stock\": 1}', '2024-03-01 10:00:02+00')")
        # Older than the stock field's clock: a conflict, journaled, answered with server_data.
        answer = loads(conn.execute(
            "SELECT inventory_sync.sync_upsert(1, '{\"stock\": 2}', '2024-03-01 10:00:00+00')::text").fetchone()[0])
        assert answer["status"] == "conflict"
        # A merging write setting the deep value itself, merged (its older lww field loses).
        answer = loads(conn.execute(
            "SELECT inventory_sync.sync_upsert(2, %s::jsonb, '2024-03-01 10:00:00+00')::text", ('{"stock": 1, "a": 1}',)).fetchone()[0])
        conn.execute("SELECT inventory_sync.sync_upsert(2, '{\"a\": 2}', '2024-03-01 10:00:05+00')")
        answer = loads(conn.execute(
            "SELECT inventory_sync.sync_upsert(2, %s::jsonb, '2024-03-01 10:00:03+00')::text",
            ('{"stock": %s, "a": 3}' % deep,)).fetchone()[0])
        assert answer["status"] == "merged"
    finally:
        conn.execute("SELECT inventory_sync.set_policy('inventory_sync.inventory', 'stock', 'lww')")
        conn.execute("TRUNCATE inventory_sync.inventory, inventory_sync.changes, inventory_sync.conflicts")


# Regression test of a bug this fuzzer found (fixed): a merging write to a tracked row holding a
# jsonb value nested deeper than 127 levels (stored by a plain write) fails with 54001, even an
# applied one: catalog::Tracked::merge reads the whole row with Jsonb::to_value
def test_merging_write_on_a_tracked_row_with_deep_jsonb(conn):
    """A tracked row's jsonb column holds a value nested 200 levels (a plain write stores it as
    is). Then a column gets a merge policy: every write of that column to the row, which never
    touches the deep value, fails with 54001, so the row can no longer be merged at all."""
    # No policy left by an earlier test (the state machine's last example may have set some):
    # the first write must be a plain one.
    for fld, in conn.execute("SELECT field FROM inventory_sync.field_policies WHERE tbl = 'public.items'::regclass"):
        conn.execute("SELECT inventory_sync.set_policy('public.items', %s, 'lww')", (fld,))
    conn.execute("TRUNCATE inventory_sync.changes, inventory_sync.conflicts, public.items")
    try:
        deep = "[" * 200 + "]" * 200
        conn.execute("SELECT inventory_sync.sync_upsert_in('public.items', '1', %s::jsonb, '2024-03-01 10:00+00')",
                     ('{"meta": %s}' % deep,))
        conn.execute("SELECT inventory_sync.set_policy('public.items', 'stock', 'field_lww')")
        answer = loads(conn.execute("SELECT inventory_sync.sync_upsert_in('public.items', '1', '{\"stock\": 5}', "
                                    "'2024-03-01 10:00:01+00')::text").fetchone()[0])
        assert answer["status"] == "applied"
    finally:
        conn.execute("SELECT inventory_sync.set_policy('public.items', 'stock', 'lww')")
        conn.execute("TRUNCATE inventory_sync.changes, inventory_sync.conflicts, public.items")
