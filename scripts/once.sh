#!/usr/bin/env bash
# once.sh NAME KEY COMMAND... : runs COMMAND unless it already passed with the same KEY, the
# hash of everything it reads (scripts/inputs.sh computes it). That is Go's test cache applied
# to the steps Go cannot cache itself (make compat, each fuzz target's smoke run): a step whose
# inputs did not change since it last passed says so and is not run again.
# FRESH=1 (set for you when CI is set) runs it anyway. Passes are recorded in .cache/passed/.
set -euo pipefail
name=$1 key=$2
shift 2
stamp=".cache/passed/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_')"
if [ -z "${FRESH:-}" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
	echo "$name: passed before with the same inputs (${key:0:12}), not run again (FRESH=1 runs it)"
	exit 0
fi
rm -f "$stamp"
"$@"
mkdir -p .cache/passed
printf '%s\n' "$key" >"$stamp"
