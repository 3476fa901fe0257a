# rollbook — make targets. `make help` lists them.
#
# The dev stack (Temporal dev server + Web UI, Consul, PostgreSQL 15, HAProxy, the demo API)
# runs real binaries on 127.0.0.1 and free ports; see internal/devstack and scripts/tools.sh.

SHELL      := /bin/bash
GO         ?= go
STACK_DIR  ?= .stack
STACK_FLAGS ?=
TESTFLAGS  ?= -timeout 20m -count=1
STACK      := $(GO) run ./internal/devstack/cmd/stack

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z][a-zA-Z_-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## build the pinned Temporal CLI and Consul once (cached; ~7 min cold), install haproxy/postgresql-15 if missing
	@bash scripts/tools.sh

.PHONY: stack-up
stack-up: tools ## start the dev stack in the background; writes .stack/env (STACK_FLAGS=--headless|--fresh)
	@$(STACK) up --dir $(STACK_DIR) $(STACK_FLAGS)

.PHONY: stack-down
stack-down: ## stop the dev stack started by stack-up (PURGE=1 also deletes its data)
	@$(STACK) down --dir $(STACK_DIR) $(if $(PURGE),--purge)

.PHONY: stack-status
stack-status: ## show the dev stack's processes and whether each component answers
	@$(STACK) status --dir $(STACK_DIR)

.PHONY: test
test: tools ## unit and end-to-end tests (e2e tests start their own stack, or reuse a live .stack)
	$(GO) test $(TESTFLAGS) ./...

.PHONY: vet
vet: ## go vet
	$(GO) vet ./...

.PHONY: fmt
fmt: ## gofmt the main module
	$(GO) fmt ./...

.PHONY: fmt-check
fmt-check: ## fail if a file is not gofmt-ed
	@out=$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...)); if [[ -n $$out ]]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi

.PHONY: build
build: ## compile every package and command
	$(GO) build ./...

.PHONY: install
install: ## install the CLI and the worker, `rollbook` and `rollbook-worker`, into $(go env GOPATH)/bin (or $GOBIN)
	$(GO) install ./starter/rollbook ./workers/rollbook-worker

.PHONY: demo
demo: stack-up ## the main job: a good and a rolled-back deployment of payments-api on the dev stack, with a report
	$(GO) run ./examples/demo --env $(STACK_DIR)/env

.PHONY: bench
bench: tools ## the benchmark (issue 4), a few minutes: writes bench/results/latest.json (BENCH_FLAGS=-env .stack/env, -strict, …)
	$(GO) run ./bench $(BENCH_FLAGS)

.PHONY: bench-smoke
bench-smoke: tools ## the benchmark in smoke mode (a few cycles of each measurement; make test runs it too)
	$(GO) test -count=1 -run '^TestBenchSmoke$$' -v ./bench

.PHONY: chaos
chaos: tools ## crash campaign (issue 5), ~15 min: kill -9 the worker at 45 points of the example runbook, check schema/keys/weights; writes tests/results/chaos.json (CHAOS_FLAGS=-points …, -list)
	$(GO) run ./tests/chaos $(CHAOS_FLAGS)

.PHONY: schema
schema: ## regenerate runbooks/rollbook.schema.json (the runbook JSON Schema) from the Go types
	$(GO) generate ./runbook

.PHONY: schema-check
schema-check: ## fail if runbooks/rollbook.schema.json is out of date with the types
	$(GO) run ./runbook/schemagen -check

.PHONY: compose-check
compose-check: ## structural test of docker-compose.yml (services, mounts, ports, pinned images); no Docker needed
	$(GO) test ./deploy/compose/

.PHONY: compose-up
compose-up: ## the whole stack with Docker Compose (needs a Docker engine); README "Docker Compose"
	docker compose up -d --build

.PHONY: codec-key
codec-key: ## print a new payload encryption key line (ID:hex) for ROLLBOOK_CODEC_KEY_FILE
	@printf '%s:%s\n' "$$(date +%Y%m%d)" "$$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# workflowcheck is pinned; `go run pkg@version` builds it once into the Go build cache.
WORKFLOWCHECK ?= go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0

.PHONY: workflowcheck
workflowcheck: ## static determinism check of the workflow code (false positives: workflowcheck.config.yaml)
	$(GO) run $(WORKFLOWCHECK) -config workflowcheck.config.yaml -test=false -show-pos ./...

.PHONY: histories
histories: tools ## re-record tests/testdata/histories/*.json (one run per outcome path, real stack) for the replay tests
	ROLLBOOK_RECORD_HISTORIES=1 $(GO) test $(TESTFLAGS) -count=1 -run '^(TestRecordHistories|TestE2EPageStuckRollbackResolvedAfterRetry)$$' -v ./tests

FUZZTIME ?= 10m
.PHONY: fuzz
fuzz: ## fuzz the runbook parser and the bundle decoder, FUZZTIME each (default 10m); failing inputs land in runbook/testdata/fuzz
	$(GO) test ./runbook -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) -timeout 0
	$(GO) test ./runbook -run '^$$' -fuzz '^FuzzDecodeBundle$$' -fuzztime $(FUZZTIME) -timeout 0
