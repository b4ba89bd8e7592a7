#!/usr/bin/env bash
# Synth time, measured honestly, side by side in one run (the machine is noisy: runs alternate A B A B).
#   (1) cmd/seedport (a Go port of the seed's three stacks, prebuilt) vs the TypeScript reference
#       (../shared/bench/ts-reference, compiled once with tsc, run with node): the language tax.
#   (2) the same with cdk-nag's AwsSolutions pack on both sides (-nag / TS_NAG=1).
#   (3) the whole app (prebuilt `go build .`) vs (1)'s Go port: what our features cost.
#   All get the CDK_CONTEXT_JSON that `cdk synth` passes (captured from the CLI: cdk.json context,
#   metadata settings), plus the defenders:sshCidr pin and aws:cdk:bundling-stacks [] (bundling skipped).
#   (4) `cdk synth` end to end (cdk.json's app), warm, with bundling vs with bundling skipped
#       (--exclusively matt: synth still builds every stack, but bundles only matt, which has no Lambda).
# Also: the templates of (1) compared after normalising, peak RSS of the app's synth (max RSS of a single
# process in its tree, i.e. the jsii node child or the Go binary, from /usr/bin/time %M), and files left in
# a private $TMPDIR by one synth. Usage: scripts/bench-synth.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
export PATH=$PWD/.tools/node_modules/.bin:$PATH CDK_DISABLE_VERSION_CHECK=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
say() { printf '%s\n' "$*" >&2; }

say "building: go build . and ./cmd/seedport"
go build -o "$work/defenders" .
go build -o "$work/seedport" ./cmd/seedport

# The context `cdk synth` passes to the app: ask the CLI itself (an app that records it and exits).
node -e 1 # fail early without node
cdk synth --app "node -e \"require('fs').writeFileSync('$work/cli-ctx.json', process.env.CDK_CONTEXT_JSON || '{}')\"" >/dev/null 2>&1 || true
if [ ! -s "$work/cli-ctx.json" ]; then
  say "could not capture the CLI's context; using cdk.json's"
  node -e "process.stdout.write(JSON.stringify(require('./cdk.json').context))" >"$work/cli-ctx.json"
fi
ctx=$(node -e "const c=require('$work/cli-ctx.json'); c['defenders:sshCidr']='203.0.113.10/32'; c['aws:cdk:bundling-stacks']=[]; process.stdout.write(JSON.stringify(c))")

# The TS reference, on the versions the Go app uses, compiled once.
ref=../shared/bench/ts-reference
[ -d "$ref" ] || ref=/work/shared/bench/ts-reference
ver() { go list -m -f '{{.Version}}' "$1" | sed 's/^v//'; }
cdklib=$(ver github.com/aws/aws-cdk-go/awscdk/v2); cons=$(ver github.com/aws/constructs-go/constructs/v10)
nagv=$(ver github.com/cdklabs/cdk-nag-go/cdknag/v2)
say "TS reference: aws-cdk-lib@$cdklib constructs@$cons cdk-nag@$nagv, tsc, node $(node --version)"
cp -r "$ref" "$work/ts" && chmod -R u+w "$work/ts"
(cd "$work/ts" && rm -f package-lock.json &&
  npm install --no-audit --no-fund --loglevel=error --save-exact "aws-cdk-lib@$cdklib" "constructs@$cons" "cdk-nag@$nagv" typescript@5 @types/node@22 >/dev/null &&
  npx tsc --target es2022 --module commonjs --skipLibCheck --types node app.ts)

synth() { # label outdir cmd...: runs one synth, appends "seconds rss_kb" to $work/<label>.txt
  local label=$1 out=$2; shift 2
  mkdir -p "$out"
  if ! /usr/bin/time -f '%e %M' -o "$work/t" env CDK_OUTDIR="$out" CDK_CONTEXT_JSON="$ctx" "$@" >"$work/log" 2>&1; then
    say "$label failed:"; tail -20 "$work/log" >&2; exit 1
  fi
  cat "$work/t" >>"$work/$label.txt"
}
go_seed()     { synth go-seed "$1" "$work/seedport"; }
ts_seed()     { (cd "$work/ts" && synth ts-seed "$1" node app.js); }
go_nag()      { synth go-nag "$1" "$work/seedport" -nag; }
ts_nag()      { (cd "$work/ts" && TS_NAG=1 synth ts-nag "$1" node app.js); }
app()         { synth app "$1" "$work/defenders"; }

# Both sides of (1) must build the same thing: compare templates without asset hashes and CDK metadata.
go_seed "$work/cmp-go"; ts_seed "$work/cmp-ts"; rm -f "$work"/go-seed.txt "$work"/ts-seed.txt
cat >"$work/norm.js" <<'JS'
const fs = require('fs');
const strip = (v) => {
  if (Array.isArray(v)) return v.map(strip);
  if (v && typeof v === 'object') {
    const o = {};
    for (const [k, x] of Object.entries(v)) {
      if (k === 'Metadata' || k === 'CDKMetadata' || k === 'CDKMetadataAvailable') continue;
      o[k] = strip(x);
    }
    return o;
  }
  return typeof v === 'string' ? v.replace(/[0-9a-f]{64}/g, '<hash>') : v;
};
process.stdout.write(JSON.stringify(strip(JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))), null, 1));
JS
diffs=0
for s in battleground matt luke; do
  node "$work/norm.js" "$work/cmp-go/$s.template.json" >"$work/go.$s.json"
  node "$work/norm.js" "$work/cmp-ts/$s.template.json" >"$work/ts.$s.json"
  if ! diff -u "$work/ts.$s.json" "$work/go.$s.json" >"$work/diff.$s" ; then diffs=1; say "template $s differs (ts → go):"; head -40 "$work/diff.$s" >&2; fi
done
[ "$diffs" = 0 ] && echo "templates of (1): Go port and TS reference identical (battleground, matt, luke; asset hashes and CDK metadata normalised)"

# Files left in TMPDIR by one synth of the app.
mkdir -p "$work/tmp"
before=$(find "$work/tmp" -mindepth 1 | wc -l)
TMPDIR="$work/tmp" synth tmpcheck "$work/out-tmp" "$work/defenders"
after=$(find "$work/tmp" -mindepth 1 | wc -l); left=$(du -sk "$work/tmp" | cut -f1)
echo "temp files left in \$TMPDIR by one synth of the app: $((after - before)) entries, ${left} KB"

# Peak memory of the whole process tree (the Go binary, jsii's node wrapper and the node kernel it
# starts), summed and sampled every 20 ms, one run.
CDK_OUTDIR="$work/out-rss" CDK_CONTEXT_JSON="$ctx" "$work/defenders" >/dev/null 2>&1 & pid=$!
treemax=0
while kill -0 "$pid" 2>/dev/null; do
  sum=$({ ps -e -o pid=,ppid=,rss= || true; } | awk -v root="$pid" '
    {pp[$1] = $2; rss[$1] = $3}
    END {for (p in pp) {q = p; while (q != "" && q != root && q in pp && q > 1) q = pp[q]; if (q == root) s += rss[p]}; print s + 0}')
  [ "$sum" -gt "$treemax" ] && treemax=$sum
  sleep 0.02
done
wait "$pid" || true
say "timing: $runs alternating runs of each"
for i in $(seq "$runs"); do
  go_seed "$work/o/gs$i"; ts_seed "$work/o/ts$i"; go_nag "$work/o/gn$i"; ts_nag "$work/o/tn$i"; app "$work/o/ap$i"
  rm -rf "$work/o"
  printf '.' >&2
done
say ""

# (4) cdk synth end to end, warm (one untimed run of each first; output dirs reused, as a user's cdk.out is).
cdksynth() { # label outdir extra-args...
  local label=$1 out=$2; shift 2
  /usr/bin/time -f '%e %M' -o "$work/t" cdk synth -q -o "$out" "$@" >"$work/log" 2>&1 || { say "cdk synth $label failed:"; tail -20 "$work/log" >&2; exit 1; }
  cat "$work/t" >>"$work/$label.txt"
}
cruns=$(( runs < 5 ? runs : 5 ))
say "cdk synth: warm-up, then $cruns alternating runs of each"
cdksynth warm "$work/cdk-b"; cdksynth warm "$work/cdk-nb" --exclusively matt
for i in $(seq "$cruns"); do
  cdksynth cdk-bundling "$work/cdk-b"; cdksynth cdk-nobundling "$work/cdk-nb" --exclusively matt; printf '.' >&2
done
say ""

col() { awk -v c="$2" '{print $c}' "$work/$1.txt"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
med() { col "$1" 1 | median; }
row() { # title a b: each side's runs and median, the ratio of each pair (same iteration) and its median
  local ma mb pr; ma=$(med "$2"); mb=$(med "$3")
  pr=$(paste -d' ' <(col "$2" 1) <(col "$3" 1) | awk '{printf "%.2f\n", $1/$2}')
  printf '%s\n  %-15s runs %s median %s s\n  %-15s runs %s median %s s\n  ratio of medians %s; per pair %s(median %sx)\n' "$1" \
    "$2" "$(col "$2" 1 | tr '\n' ' ')" "$ma" "$3" "$(col "$3" 1 | tr '\n' ' ')" "$mb" \
    "$(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.2fx", a/b}')" "$(tr '\n' ' ' <<<"$pr")" "$(median <<<"$pr")"
}
echo "synth time, $(date -u +%F), $(nproc) cores, node $(node --version), aws-cdk-go $cdklib, $runs alternating runs"
row "(1) Go port of the seed vs TS reference (target <= 1.3x)" go-seed ts-seed
row "(2) the same with cdk-nag AwsSolutions on both sides (target <= 1.25x)" go-nag ts-nag
row "(3) the whole app vs the Go port of the seed (target <= 1.6x)" app go-seed
row "(4) cdk synth warm, with bundling vs bundling skipped (target <= 1.2x)" cdk-bundling cdk-nobundling
echo "peak RSS of one synth of the app (largest process): median $(col app 2 | median) KB (runs $(col app 2 | tr '\n' ' ')); target <= 250 MB"
echo "peak RSS of the app's process tree (Go + jsii node processes, summed, sampled every 20 ms, one run): ${treemax} KB"
