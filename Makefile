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

GO_PKGS := ./...
FUZZTIME ?= 3s

.PHONY: help tools synth test vet fmt-check unit examples lint-workflows fuzz bench review pin-ssh clean

help:
	@echo "make synth    install what is missing, synthesize every stack into cdk.out/ (offline works)"
	@echo "make test     the whole test suite (vet, gofmt, unit, snapshot, IAM-evaluator, short fuzz)"
	@echo "make bench    benchmarks and synth timing"
	@echo "make pin-ssh  look up this workstation's address once and pin it in cdk.context.json"

# npm dev tools (CDK CLI, Node 22, the IAM evaluator) live in .tools/, where Go's ./... does not look.
tools: .tools/node_modules/.installed
.tools/node_modules/.installed: .tools/package.json .tools/package-lock.json
	npm ci --prefix .tools --no-audit --no-fund --loglevel=error
	@node --version | grep -q '^v22\.' || { echo "Node 22 from .tools was not installed (got $$(node --version))"; exit 1; }
	@touch $@

synth: tools
	go build -o /dev/null .
	cdk synth --all --quiet
	@ls cdk.out/*.template.json

vet:
	go vet $(GO_PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go') $$(git ls-files --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

unit: tools
	go test -count=1 $(GO_PKGS)

# A short run of every fuzz target (go test -fuzz takes one target per run).
fuzz:
	@set -e; for pkg in $$(go list ./internal/...); do \
	  for t in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg >/dev/null; \
	  done; \
	done

# The examples app is its own Go module (as an outside user's would be): vet, test, synth it.
examples: tools
	cd examples && go vet ./... && go test -count=1 ./...

# Lint the sample CI workflow with actionlint (a Go module, fetched through the Go proxy).
ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
lint-workflows:
	go run $(ACTIONLINT) -shellcheck= -pyflakes= .github/workflows/*.yml

test: tools vet fmt-check unit examples lint-workflows fuzz

# Figures for the README: the detector's decode+detect pipeline against a straightforward
# encoding/json version (same input, same run), the shipped binaries, and synth time.
bench: tools
	go test -run '^$$' -bench 'CWLBatch1000' -benchmem -cpu 1 -count 5 ./internal/detect/
	go test -run '^$$' -bench . -benchmem -cpu 1 ./internal/cloudtrail/
	go test -run '^$$' -bench . -benchtime 20x ./lambda/detector/
	go test -count=1 -v -run 'TestPerformance|TestFigure' ./lambda/locker/ ./lambda/detector/ | grep -E '^\s+\S+_test.go:[0-9]+: '
	scripts/bench-synth.sh 7

# The policy review report of the synthesized app (Markdown for a pull request; --json for machines).
review: synth
	go run ./cmd/review cdk.out

clean:
	rm -rf cdk.out

pin-ssh:
	go run ./cmd/pinssh
