#!/usr/bin/env bash
# steps.sh TARGET... : runs each make target in turn, stops at the first that fails, and ends with
# one line that says what ran and how long each step took (make test's summary), e.g.
#   make test: ok in 58s (vet 6s, fmt-check 0s, staticcheck 9s, unit 31s, ...)
set -uo pipefail
summary=() start=$SECONDS status=ok
for t in "$@"; do
	s=$SECONDS
	if ! "${MAKE:-make}" --no-print-directory "$t"; then
		summary+=("$t FAILED after $((SECONDS - s))s")
		status=failed
		break
	fi
	summary+=("$t $((SECONDS - s))s")
done
line=$(printf '%s, ' "${summary[@]}")
echo "make test: $status in $((SECONDS - start))s (${line%, })"
[ "$status" = ok ]
