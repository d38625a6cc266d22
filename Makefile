# mecd: every target works on a fresh machine of this kind (Go, Node and npm
# present); what a target needs beyond that it installs itself, pinned.
SHELL := /bin/bash
GO    ?= go
# Some checksum look-ups are not answered here; go.sum pins every module and
# every download is still verified against it.
export GOSUMDB := off

FUNCTIONS := $(notdir $(wildcard functions/*))
BOOTSTRAPS := $(addsuffix /bootstrap,$(addprefix build/,$(FUNCTIONS)))
LAMBDA_FLAGS := -tags lambda.norpc -trimpath -ldflags "-s -w"
TEST_TIMEOUT ?= 40m

.PHONY: all build test lint fmt demo clean tools

all: build

## build: cross-compile every function to build/<name>/bootstrap (linux/arm64, provided.al2023)
build: $(BOOTSTRAPS)

build/%/bootstrap: FORCE
	@mkdir -p $(dir $@)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(LAMBDA_FLAGS) -o $@ ./functions/$*

FORCE:

# AWS's IAM evaluation logic (@cloud-copilot/iam-simulate, pinned with its
# lock file): the local runtime decides node calls with it, and the IAM proof
# evaluates every recorded call with it.
IAMEVAL := test/iameval/node_modules/.package-lock.json
$(IAMEVAL): test/iameval/package.json test/iameval/package-lock.json
	cd test/iameval && npm ci --no-audit --no-fund
	@touch $@

.PHONY: iameval-deps
iameval-deps: $(IAMEVAL)

## test: every test (the local runtime starts and stops itself)
# The browser test runs on its own, after the rest: next to the e2e suite's
# load on 2 cores its API answers came later than its waits allow.
test: $(IAMEVAL)
	$(GO) test -count=1 -parallel 6 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/test/browser$$')
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/browser/

## tools: what lint and the tests use beyond Go (Debian packages; the machine runs as root)
tools:
	@command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; }
	@shellcheck --version | sed -n 2p

## lint: gofmt, go vet, staticcheck, go mod tidy diff
lint: tools
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@# Scripts are rendered as inputs + lib.sh + script: variables cross files (the Go test checks the rendered ones).
	shellcheck -s bash -e SC2034,SC2154 internal/node/scripts/*.sh
	@cp go.mod /tmp/mecd-go.mod.bak && cp go.sum /tmp/mecd-go.sum.bak; \
	 $(GO) mod tidy; \
	 if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changes go.mod/go.sum:"; git --no-pager diff -- go.mod go.sum; \
	   cp /tmp/mecd-go.mod.bak go.mod; cp /tmp/mecd-go.sum.bak go.sum; exit 1; fi

## demo: provision a MEC on the local runtime (kumo + node simulator + the real Lambdas), then stop everything
demo: bin/kumo $(IAMEVAL)
	$(GO) run ./test/demo demo -kumo bin/kumo

# kumo, pinned in go.mod (tool directive), run as a process by the demo.
bin/kumo: go.mod go.sum
	@mkdir -p bin
	$(GO) build -o $@ github.com/sivchari/kumo/cmd/kumo

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf build bin cdk.out

# --- Deploying to AWS (README "Deploying to AWS") ---------------------------
# synth needs Go only. deploy, destroy and bootstrap use the CDK CLI pinned in
# package.json (installed here with npm ci), credentials from AWS_PROFILE and
# the home region from cdk.json (override: make deploy REGION=... REGIONS=a,b).
CDK_CLI     := node_modules/.bin/cdk
CDK_CONTEXT  = $(if $(REGION),-c mecd:region=$(REGION)) $(if $(REGIONS),-c mecd:regions=$(REGIONS))

.PHONY: synth deploy destroy bootstrap

## synth: build, then write cdk.out/*.template.json with the Go app alone (a cdk-nag finding fails it)
synth: build
	$(GO) run ./cmd/cdk $(CDK_CONTEXT)

$(CDK_CLI): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## bootstrap: once per account and region, the CDK's deployment resources (every region the app deploys to)
bootstrap: build $(CDK_CLI)
	$(CDK_CLI) bootstrap $(CDK_CONTEXT)

## deploy: build, then deploy the backend stack and its event forwarders (asks before widening IAM)
deploy: build $(CDK_CLI)
	$(CDK_CLI) deploy --all $(CDK_CONTEXT)

## destroy: delete the stacks (the table is kept unless mecd:retainTable is false; tear MECs down first)
destroy: build $(CDK_CLI)
	$(CDK_CLI) destroy --all $(CDK_CONTEXT)

## fuzz: fuzz the API's request handling for a bounded time (seeds also run in `make test`)
.PHONY: fuzz
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzHandleRequest -fuzztime=30s ./internal/api/

## chaos: the full chaos suite (20 MECs under faults, 100 DELETE/POST races); writes test/artifacts/chaos.json (~10 min)
.PHONY: chaos
chaos: $(IAMEVAL)
	MECD_CHAOS=full $(GO) test -count=1 -timeout 60m -run '^TestChaos$$' ./test/chaos/

## bench: measure speed and cost on the local runtime (kumo as a process); writes BENCHMARKS.md (~15 min)
.PHONY: bench
bench: build bin/kumo $(IAMEVAL)
	$(GO) run ./test/bench -kumo bin/kumo -build build -out BENCHMARKS.md $(BENCH_FLAGS)

# --- mecctl's dashboard (README "mecctl and the dashboard") -----------------
DASHBOARD_PORT ?= 8080

## dashboard: the dashboard on the local runtime, with MECs in every state (http://127.0.0.1:8080/; Ctrl-C stops all)
.PHONY: dashboard
dashboard: $(IAMEVAL)
	@mkdir -p bin
	$(GO) build -o bin/mecd-dashboard ./test/browser/serve
	@# exec, not go run: Ctrl-C reaches the runner itself, which stops everything it started.
	@exec bin/mecd-dashboard -port $(DASHBOARD_PORT)

## browser-deps: what the browser test needs beyond Go: Debian's chromium, and playwright-core (npm ci, pinned)
.PHONY: browser-deps
browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version 2>/dev/null
	cd test/browser && npm ci --no-audit --no-fund

## browser-test: the dashboard in headless chromium on the local runtime (screenshots in test/artifacts/)
.PHONY: browser-test
browser-test: browser-deps $(IAMEVAL)
	CI=true $(GO) test -count=1 -v -run TestDashboardInBrowser ./test/browser/
