# Defenders: `make synth` and `make test` are the two commands a newcomer needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS_BIN := $(CURDIR)/.tools/node_modules/.bin
# Node 22 and the pinned CDK CLI from .tools come first; the machine's Node 20 is end-of-life for jsii.
export PATH := $(TOOLS_BIN):$(PATH)
# Synth talks to nothing but checkip: no CLI version check, no telemetry (notices and version
# reporting are off in cdk.json).
export CDK_DISABLE_VERSION_CHECK := 1
export CDK_DISABLE_CLI_TELEMETRY := true
# No "new npm version" notice in the middle of the output.
export npm_config_update_notifier := false

GO_PKGS := ./...
# A warm `make test` reruns only what changed: Go caches test results by the packages, files and
# environment each test reads, and scripts/once.sh does the same for make compat and each fuzz
# target's smoke run. FRESH=1 runs everything (CI sets it: CI=true).
FRESH ?= $(CI)
override FRESH := $(filter-out false 0 no,$(FRESH))
export FRESH
COUNT := $(if $(FRESH),-count=1)
MODULE := github.com/defenders-cdk/defenders
# make fuzz: the long runs; make test runs every target for FUZZ_SMOKE.
FUZZTIME ?= 1m
FUZZ_SMOKE := 1s

# aws-cdk-go versions that make compat proves: the oldest we support is the one go.mod requires
# (Go's minimum version selection never gives an importer less); the newest is whatever the Go
# proxy serves today, as `go get ...@latest` in a user's module would pick.
CDK_MODULE := github.com/aws/aws-cdk-go/awscdk/v2
CDK_OLDEST ?= $(shell go list -m -f '{{.Version}}' $(CDK_MODULE))
CDK_NEWEST ?= $(shell go list -m -f '{{.Version}}' $(CDK_MODULE)@latest)

.PHONY: help tools modules synth test vet fmt-check staticcheck unit race examples compat lint-workflows fuzz fuzz-smoke bench review pin-ssh clean

help:
	@echo "make synth    install what is missing, synthesize every stack into cdk.out/ (offline works)"
	@echo "make test     the whole test suite (vet, gofmt, unit, snapshot, IAM-evaluator, cfn-lint, compat, short fuzz);"
	@echo "              reruns only what changed since it last passed; FRESH=1 runs everything (CI does)"
	@echo "make compat   an outside module on the oldest and the newest aws-cdk-go: build, test, cdk synth, cfn-lint"
	@echo "make fuzz     every fuzz target for FUZZTIME (default 1m; make test runs each for 1s)"
	@echo "make bench    benchmarks, measurements and synth timing (ANCHOR_PY=... adds the anchor comparison)"
	@echo "make pin-ssh  look up this workstation's address once and pin it in cdk.context.json"

# npm dev tools (CDK CLI, Node 22, the IAM evaluator) live in .tools/, where Go's ./... does not look.
tools: .tools/node_modules/.installed
.tools/node_modules/.installed: .tools/package.json .tools/package-lock.json
	@echo "==> installing the dev tools into .tools/ (CDK CLI, Node 22, IAM evaluator; first run about 20 s)"
	npm ci --prefix .tools --no-audit --no-fund --loglevel=error
	@node --version | grep -q '^v22\.' || { echo "Node 22 from .tools was not installed (got $$(node --version))"; exit 1; }
	@touch $@

# Each long first-run step says what it does before it starts (figures from a fresh machine, README).
modules:
	@echo "==> downloading Go modules (first run: about 1 min; aws-cdk-go alone is about 70 MB)"
	@go mod download

synth: tools modules
	@echo "==> compiling the app (first run: about 1.5 min, aws-cdk-go is a large package; then cached)"
	go build -o /dev/null .
	@echo "==> cdk synth (first run: also cross-compiles the two Lambdas, about 30 s, then cached by their inputs)"
	@log=$$(mktemp); set -o pipefail; cdk synth --quiet 2>&1 | tee "$$log"; \
	if grep -qi 'deprecat' "$$log"; then echo "synth printed a deprecation warning (see above)"; rm -f "$$log"; exit 1; fi; rm -f "$$log"
	@ls cdk.out/*.template.json

vet:
	go vet $(GO_PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# staticcheck (a Go module, fetched through the Go proxy): bugs, dead code, simplifications.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck:
	go run $(STATICCHECK) $(GO_PKGS)

# Every package once: the pure-Go ones (internal/) under the race detector (the Lambdas' logic is
# concurrent), everything else plainly.
# The detector's two load simulations (thousands of simulated invocations) take 40 s under the
# race detector and 4 s without: they run plainly in unit, and every smaller test of the same
# code runs under the race detector.
SIMULATIONS := TestOrganisationAtScale|TestBacklogOfUnseenInstances
unit: tools
	go test $(COUNT) $$(go list $(GO_PKGS) | grep -v '^$(MODULE)/internal/')
	go test $(COUNT) -run '^($(SIMULATIONS))$$' ./internal/detectorfn/

race: tools
	go test -race $(COUNT) -skip '^($(SIMULATIONS))$$' ./internal/...

# Every fuzz target in turn (go test -fuzz takes one target per run): make fuzz for the long runs,
# make fuzz-smoke (in make test) for a short one. Minimizing a new
# input may take 60 s by default; 100 runs per input keep a short run's time on new inputs (with 1s the
# assembly target ran 790 inputs in 30 s, with 100x 24,000).
# The smoke run of a target whose code did not change since it last passed is not repeated
# (scripts/once.sh); make fuzz always runs (fuzzing is random: a new run may find what the last
# one did not).
fuzz-smoke:
	scripts/fuzz.sh $(FUZZ_SMOKE)

fuzz:
	FRESH=1 scripts/fuzz.sh $(FUZZTIME)

# The examples app is its own Go module (as an outside user's would be): vet, test, synth it.
examples: tools
	cd examples && go vet ./... && go test $(COUNT) ./...

# Lint the sample CI workflow with actionlint (a Go module, fetched through the Go proxy).
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
lint-workflows:
	go run $(ACTIONLINT) -shellcheck= -pyflakes= .github/workflows/*.yml

# A fresh outside module (served from a local module proxy, as go get would fetch a release) on
# the oldest and the newest aws-cdk-go: scripts/compat.sh says what it checks.
compat: tools
	@echo "==> compat: aws-cdk-go $(CDK_OLDEST) (oldest supported) and $(CDK_NEWEST) (newest served)"
	@test -n "$(CDK_OLDEST)" -a -n "$(CDK_NEWEST)" || { echo "compat: could not resolve the aws-cdk-go versions"; exit 1; }
	@scripts/once.sh compat "$$(scripts/inputs.sh -x '(_test\.go|\.md)$$|(^|/)testdata/|^(docs|test|\.github)/' \
		--extra "$(CDK_OLDEST) $(CDK_NEWEST) $$(go version) $$(cfn-lint --version) $$(scripts/inputs.sh examples)" .)" \
		scripts/compat.sh $(sort $(CDK_OLDEST) $(CDK_NEWEST))

# Each step in turn, then one line with what ran and how long each step took.
TEST_STEPS := vet fmt-check staticcheck unit race examples compat lint-workflows fuzz-smoke
test: tools
	@MAKE="$(MAKE)" scripts/steps.sh $(TEST_STEPS)

# ANCHOR_PY: lambda/detect-cwl.py of jchrisfarris/detect-credential-compromise at commit 83c8e12, for
# the end-to-end comparison with the anchor (lambda/detector's TestFigureAnchorEndToEnd; skipped
# without it).
ANCHOR_PY ?=
# Figures for the README: the detector's decode+detect pipeline against a straightforward
# encoding/json version (same input, same run), the shipped binaries, and synth time.
bench: tools
	go test -run '^$$' -bench 'CWLBatch1000' -benchmem -cpu 1 -count 5 ./internal/detect/
	go test -run '^$$' -bench . -benchmem -cpu 1 ./internal/cloudtrail/
	go test -run '^$$' -bench . -benchtime 20x ./lambda/detector/
	DEFENDERS_FIGURES=1 DEFENDERS_ANCHOR_PY=$(ANCHOR_PY) go test -count=1 -timeout 30m -v -run 'TestPerformance|TestFigure|TestAFiveThousand' ./lambda/locker/ ./lambda/detector/ ./internal/cloudtrail/ ./internal/review/ | grep -E '^\s+\S+_test.go:[0-9]+: '
	scripts/bench-synth.sh 7

# The policy review report of the synthesized app (Markdown for a pull request; --json for machines).
review: synth
	go run ./cmd/review cdk.out

clean:
	rm -rf cdk.out

pin-ssh:
	go run ./cmd/pinssh
