#!/usr/bin/env bash
# fuzz.sh FUZZTIME : runs every fuzz target of internal/ for FUZZTIME each (go test -fuzz takes one
# target per run), two at a time with one fuzzing worker each (a 2-core machine does the same work in
# half the wall time). Targets are found in the sources (func FuzzXxx in *_test.go), not by
# compiling every package to list them. On a failure it prints that target's output and fails.
# Minimizing a new input may take 60 s by default; 100 runs per input keep a short run short.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:?usage: scripts/fuzz.sh FUZZTIME}
targets=$(git ls-files 'internal/*_test.go' | xargs grep -H -o '^func Fuzz[A-Za-z0-9_]*(' |
	sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\($#./\1 \2#' | sort -u)
[ -n "$targets" ] || { echo "fuzz: no fuzz targets found"; exit 1; }
run() {
	local pkg=$1 target=$2 out
	echo "fuzz $pkg $target ($fuzztime)"
	if ! out=$(go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x -parallel 1 "$pkg" 2>&1); then
		printf 'FAIL fuzz %s %s\n%s\n' "$pkg" "$target" "$(printf '%s\n' "$out" | tail -40)"
		return 1
	fi
}
export -f run
export fuzztime
printf '%s\n' "$targets" | xargs -P 2 -L 1 bash -c 'run "$0" "$1"'
echo "fuzz: $(printf '%s\n' "$targets" | wc -l) targets, $fuzztime each"
