#!/usr/bin/env bash
# compat.sh VERSION... : builds, tests and synthesizes the examples app as a fresh outside module
# would, once per aws-cdk-go version given (make compat passes the oldest we support and the
# newest the Go proxy serves).
#
# For each version it:
#   1. serves this checkout as github.com/defenders-cdk/defenders from a local module proxy (a
#      zip, exactly as `go get` would fetch a release; never a replace directive), so that the
#      Lambdas are built from the module cache with our own go.sum, as on a user's machine;
#   2. creates a new module next to nothing, `go get`s Defenders and that aws-cdk-go version,
#      copies examples/main.go and its test into it, and checks that Go kept that version;
#   3. runs go vet and go test (which synthesizes with Lambda bundling, into an empty build cache);
#   4. runs `cdk synth` with the pinned CDK CLI, fails on any deprecation warning, and lints
#      every template with cfn-lint (errors fail; warnings are printed).
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 AWS_CDK_GO_VERSION..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/defenders-compat.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
step() { printf '==> %s\n' "$*"; }

# 1. A module proxy with this checkout. The version carries a hash of the content: the module
# cache never serves a stale copy of an earlier run.
mod=github.com/defenders-cdk/defenders
cd "$root"
# The module's files as they are in the working tree: tracked and untracked, not ignored, not
# deleted, without the examples module (a module of its own) and the dev tools.
files() { git ls-files -co --exclude-standard | grep -v -E '^(examples|\.tools|\.github)/' | while IFS= read -r f; do [ -f "$f" ] && printf '%s\n' "$f"; done | LC_ALL=C sort; }
hash=$(files | xargs sha256sum | sha256sum | cut -c1-12)
ver="v0.0.0-$(date -u +%Y%m%d%H%M%S)-$hash"
proxy="$work/proxy/$mod/@v"
mkdir -p "$proxy"
files | python3 -c '
import sys, zipfile
prefix, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(l.strip() for l in sys.stdin if l.strip()):
        z.write(f, prefix + "/" + f)
' "$mod@$ver" "$proxy/$ver.zip"
cp go.mod "$proxy/$ver.mod"
printf '{"Version":"%s","Time":"%s"}\n' "$ver" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$proxy/$ver.info"
echo "$ver" > "$proxy/list"
export GOPROXY="file://$work/proxy,$(go env GOPROXY)"
export GONOSUMDB="$mod" GOFLAGS=-mod=mod GOWORK=off
export CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true

# One version's checks; the versions run side by side (each is mostly single-threaded: go vet, a
# test binary, the jsii kernel), each into its own log, printed in order when both are done.
check() {
	local cdkver=$1 app="$work/app-$1" got dir out rc
	set -euo pipefail
	mkdir -p "$app"
	cp "$root/examples/main.go" "$root/examples/main_test.go" "$root/examples/cdk.json" "$app/"
	cd "$app"
	step "aws-cdk-go $cdkver: a new module gets $mod@$ver"
	go mod init example.com/outside >/dev/null 2>&1
	go get "$mod@$ver" "github.com/aws/aws-cdk-go/awscdk/v2@$cdkver" >/dev/null 2>&1 || go get "$mod@$ver" "github.com/aws/aws-cdk-go/awscdk/v2@$cdkver"
	go mod tidy >/dev/null
	got=$(go list -m -f '{{.Version}}' github.com/aws/aws-cdk-go/awscdk/v2)
	[ "$got" = "$cdkver" ] || { echo "FAIL: Go selected aws-cdk-go $got, not $cdkver (our go.mod requires more?)" >&2; exit 1; }
	dir=$(go list -m -f '{{.Dir}}' "$mod")
	case "$dir" in "$(go env GOMODCACHE)"/*) ;; *) echo "FAIL: $mod comes from $dir, not the module cache" >&2; exit 1 ;; esac
	step "aws-cdk-go $cdkver: go vet, go test (synth with bundling, Lambdas built in $dir)"
	go vet ./...
	DEFENDERS_BUILD_CACHE="$work/lambda-cache-$cdkver" go test -count=1 ./...
	step "aws-cdk-go $cdkver: cdk synth with the pinned CLI ($(cdk --version))"
	out=$(DEFENDERS_BUILD_CACHE="$work/lambda-cache-$cdkver" cdk synth --quiet -o "$work/out-$cdkver" 2>&1) || { echo "$out"; exit 1; }
	if grep -i 'deprecat' <<<"$out"; then
		echo "FAIL: deprecation warnings with aws-cdk-go $cdkver" >&2
		exit 1
	fi
	step "aws-cdk-go $cdkver: cfn-lint"
	rc=0
	cfn-lint --format parseable "$work/out-$cdkver"/*.template.json || rc=$?
	if (( rc & 2 )); then echo "FAIL: cfn-lint errors with aws-cdk-go $cdkver" >&2; exit 1; fi
	step "aws-cdk-go $cdkver: ok"
}
pids=()
for cdkver in "$@"; do
	(check "$cdkver") >"$work/log-$cdkver" 2>&1 &
	pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || status=1
done
for cdkver in "$@"; do cat "$work/log-$cdkver"; done
exit $status
