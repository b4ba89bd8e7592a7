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
# A target's short run is skipped when nothing it is built from changed since it last passed
# (scripts/once.sh): the key covers the Go files of every package of ours that its test binary
# includes, its own testdata, go.sum, the Go version and FUZZTIME.
key() {
	local pkg=$1 dirs
	dirs=$(go list -test -deps -f '{{if not .Standard}}{{.Dir}}{{end}}' "$pkg" | grep "^$PWD/" | sort -u |
		sed -e "s#^$PWD/##" -e 's#.*#:(glob)&/*#')
	# shellcheck disable=SC2086
	scripts/inputs.sh --extra "$(go version) $fuzztime" go.sum "${pkg#./}/testdata" $dirs
}
run() {
	local pkg=$1 target=$2 key=$3 out
	if ! out=$(scripts/once.sh "fuzz-smoke $pkg $target" "$key-$target" \
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x -parallel 1 "$pkg" 2>&1); then
		printf 'FAIL fuzz %s %s\n%s\n' "$pkg" "$target" "$(printf '%s\n' "$out" | tail -40)"
		return 1
	fi
	case $out in
	*"not run again"*) echo "fuzz $pkg $target: passed before with the same inputs, not run again" ;;
	*) echo "fuzz $pkg $target ($fuzztime)" ;;
	esac
}
export -f run
export fuzztime
declare -A keys
lines=$(while read -r pkg target; do
	[ -n "${keys[$pkg]:-}" ] || keys[$pkg]=$(key "$pkg")
	echo "$pkg $target ${keys[$pkg]}"
done <<<"$targets")
printf '%s\n' "$lines" | xargs -P 2 -L 1 bash -c 'run "$0" "$1" "$2"'
echo "fuzz: $(printf '%s\n' "$targets" | wc -l) targets, $fuzztime each"
