#!/bin/sh
# pg_regress's psql launcher (scripts/test.sh passes it as --launcher): runs psql as given and
# shows every row version in its output as 16 dots, as wide as a version, so psql's columns stay
# aligned. A version is the server's clock when the row was written, different on every run;
# the file about versions compares them in SQL (versions.sql). Matches the 16 hex digits of a
# version in jsonb ("version": "…") and json ("version":"…") text.
"$@" 2>&1 | sed -E 's/("version": ?")[0-9a-f]{16}"/\1················"/g'
