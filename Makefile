# rollbook — make targets. `make help` lists them.
#
# The dev stack (Temporal dev server + Web UI, Consul, PostgreSQL 15, HAProxy, the demo API)
# runs real binaries on 127.0.0.1 and free ports; see internal/devstack and scripts/tools.sh.

SHELL      := /bin/bash
GO         ?= go
STACK_DIR  ?= .stack
STACK_FLAGS ?=
TESTFLAGS  ?= -timeout 20m
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

.PHONY: demo
demo: stack-up ## the main job: a good and a rolled-back deployment of payments-api on the dev stack, with a report
	$(GO) run ./examples/demo --env $(STACK_DIR)/env

# Reserved: defined by the benchmark and durability work (issues 4, 5).
.PHONY: bench chaos
bench chaos:
	@echo "make $@: not implemented yet" >&2; exit 2
