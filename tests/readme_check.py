"""The README's examples must show the regression outputs verbatim, so the README cannot drift
from what the extension really answers. A block between <!-- example:NAME --> and
<!-- /example:NAME --> must equal tests/pg_regress/expected/NAME.out."""

import pathlib
import re
import sys

repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
readme = (repo / "README.md").read_text()
blocks = re.findall(r"<!-- example:(\w+) -->\n```sql\n(.*?)```\n<!-- /example:\1 -->", readme, re.S)
if not blocks:
    sys.exit("README.md has no <!-- example:NAME --> blocks")
failed = False
for name, text in blocks:
    expected = (repo / "tests/pg_regress/expected" / f"{name}.out").read_text()
    if text != expected:
        print(f"README.md example {name} differs from tests/pg_regress/expected/{name}.out: copy it over")
        failed = True
    else:
        print(f"README.md example {name} matches tests/pg_regress/expected/{name}.out")
sys.exit(1 if failed else 0)
