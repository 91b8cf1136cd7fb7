"""The documents' examples must show the regression outputs verbatim, so the docs cannot drift
from what the extension really answers. In README.md and in every docs/*.md, a block between
<!-- example:NAME --> and <!-- /example:NAME --> (each marker a line of its own) must equal
tests/pg_regress/expected/NAME.out, and tests/pg_regress/sql/NAME.sql must exist (pg_regress runs
it). README.md must have such blocks; a file in docs/ may have none."""

import pathlib
import re
import sys

repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
# A marker is a line of its own; one quoted inside a sentence (as DEVELOPMENT.md does) is not.
block = re.compile(r"^<!-- example:(\w+) -->\n```sql\n(.*?)```\n<!-- /example:\1 -->$", re.S | re.M)
opening = re.compile(r"^<!-- example:(\w+) -->$", re.M)

documents = [repo / "README.md"] + sorted((repo / "docs").glob("*.md"))
failed = False
for path in documents:
    doc = path.relative_to(repo).as_posix()
    text = path.read_text()
    blocks = block.findall(text)
    if doc == "README.md" and not blocks:
        sys.exit("README.md has no <!-- example:NAME --> blocks")
    # A marker whose block is malformed (no ```sql fence, a mismatched closing marker) would
    # otherwise be skipped silently.
    malformed = sorted(set(opening.findall(text)) - {name for name, _ in blocks})
    for name in malformed:
        print(f"{doc} example {name} is not a ```sql block between <!-- example:{name} --> and <!-- /example:{name} -->")
        failed = True
    for name, shown in blocks:
        expected_path = repo / "tests/pg_regress/expected" / f"{name}.out"
        if not expected_path.exists():
            print(f"{doc} example {name} has no tests/pg_regress/expected/{name}.out")
            failed = True
            continue
        if not (repo / "tests/pg_regress/sql" / f"{name}.sql").exists():
            print(f"{doc} example {name} has no tests/pg_regress/sql/{name}.sql")
            failed = True
            continue
        if shown != expected_path.read_text():
            print(f"{doc} example {name} differs from tests/pg_regress/expected/{name}.out: copy it over")
            failed = True
        else:
            print(f"{doc} example {name} matches tests/pg_regress/expected/{name}.out")
sys.exit(1 if failed else 0)
