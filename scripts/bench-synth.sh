#!/usr/bin/env bash
# Synth time, side by side in one run (machines are noisy): the Defenders app as a prebuilt
# binary, with every stack and check, against the seed design in TypeScript
# (../shared/bench/ts-reference). Prints each run and the medians. Usage: scripts/bench-synth.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
export PATH=$PWD/.tools/node_modules/.bin:$PATH
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/defenders" .
# Lambda bundling is cached by asset hash; skip it so that the figure is synth itself.
ctx='{"defenders:sshCidr":"203.0.113.10/32","aws:cdk:bundling-stacks":[]}'
ts=""
if [ -d ../shared/bench/ts-reference ]; then
  cp -r ../shared/bench/ts-reference "$work/ts" && chmod -R u+w "$work/ts"
  if (cd "$work/ts" && npm install --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then ts="$work/ts"; fi
fi
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
: >"$work/go.txt"; : >"$work/ts.txt"
for i in $(seq "$runs"); do
  out=$(mktemp -d -p "$work")
  /usr/bin/time -f %e -o "$work/t" env CDK_OUTDIR="$out" CDK_CONTEXT_JSON="$ctx" "$work/defenders" >/dev/null 2>&1
  cat "$work/t" >>"$work/go.txt"
  if [ -n "$ts" ]; then
    out=$(mktemp -d -p "$work")
    (cd "$ts" && /usr/bin/time -f %e -o "$work/t" env CDK_OUTDIR="$out" npx tsx app.ts >/dev/null 2>&1) && cat "$work/t" >>"$work/ts.txt"
  fi
done
echo "defenders (5 stacks, cdk-nag, guard): runs $(tr '\n' ' ' <"$work/go.txt")median $(median <"$work/go.txt") s"
[ -n "$ts" ] && echo "ts-reference (3 stacks, no checks):   runs $(tr '\n' ' ' <"$work/ts.txt")median $(median <"$work/ts.txt") s"
true
