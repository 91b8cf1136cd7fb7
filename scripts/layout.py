"""The shape of the code, checked (scripts/test.sh lint):

1. The extension's modules import only downwards, in this order (docs/DEVELOPMENT.md, Layout):
   api > batch > feed > write > catalog > pg > error, settings. A module may use its own
   submodules and any module below it, never one above it or beside it.
2. `unsafe` appears only under src/pg/ (the PostgreSQL interface) and in the in-database tests.
3. No source file is longer than 600 lines.

Prints what breaks a rule and exits 1; prints a summary and exits 0 otherwise."""

import pathlib
import re
import sys

ORDER = [["api"], ["batch"], ["feed"], ["write"], ["catalog"], ["pg"], ["error", "settings"]]
RANK = {name: rank for rank, names in enumerate(ORDER) for name in names}
# Not layers: the crate root (a module list) and the in-database tests, which call the SQL API.
EXEMPT = {"lib", "tests"}
MAX_LINES = 600

repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
src = repo / "src"
problems = []
checked = 0


def module_of(path: pathlib.Path) -> str:
    return path.relative_to(src).parts[0].removesuffix(".rs")


def code_lines(text: str):
    """Lines without // comments (doc comments name modules in prose)."""
    for number, line in enumerate(text.splitlines(), 1):
        yield number, line.split("//", 1)[0]


for path in sorted(src.rglob("*.rs")):
    module = module_of(path)
    text = path.read_text()
    rel = path.relative_to(repo).as_posix()
    checked += 1
    if module not in RANK and module not in EXEMPT:
        problems.append(f"{rel}: module `{module}` has no place in the layer order (scripts/layout.py)")
        continue
    for number, line in code_lines(text):
        if module not in EXEMPT:
            for used in re.findall(r"\bcrate::([a-z_]+)", line):
                if used == module:
                    continue
                if used not in RANK:
                    problems.append(f"{rel}:{number}: uses crate::{used}, which has no place in the layer order")
                elif RANK[used] <= RANK[module]:
                    where = "above" if RANK[used] < RANK[module] else "beside"
                    problems.append(f"{rel}:{number}: `{module}` imports `{used}`, a module {where} it")
        if re.search(r"\bunsafe\b", line) and module not in ("pg", "tests"):
            problems.append(f"{rel}:{number}: `unsafe` outside src/pg/")

for root in ("src", "core/src", "fuzz/src", "fuzz/fuzz_targets"):
    for path in sorted((repo / root).rglob("*.rs")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(repo).as_posix()}: {lines} lines (at most {MAX_LINES})")

for problem in problems:
    print(problem)
if problems:
    sys.exit(1)
print(f"layout: {checked} files of src/ import only downwards ({' > '.join('/'.join(n) for n in ORDER)}); "
      f"unsafe only in src/pg/; no file over {MAX_LINES} lines")
