"""The README's quick start must show the laptops regression output verbatim, so the README
cannot drift from what the extension really answers."""

import pathlib
import re
import sys

repo = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
readme = (repo / "README.md").read_text()
expected = (repo / "tests/pg_regress/expected/laptops.out").read_text()
match = re.search(r"<!-- quickstart:begin -->\n```sql\n(.*?)```\n<!-- quickstart:end -->", readme, re.S)
if not match:
    sys.exit("README.md has no quickstart block between <!-- quickstart:begin/end --> markers")
if match.group(1) != expected:
    sys.exit("README.md quick start differs from tests/pg_regress/expected/laptops.out: copy it over")
print("README quick start matches tests/pg_regress/expected/laptops.out")
