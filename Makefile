# Makefile for github.com/eventsourced-go/eventsourced.
#
# The logic lives in scripts/; see the header of scripts/test.sh for what
# `make test` provisions (PostgreSQL, etcd) and which environment it exports.
#
#   make test      gofmt + go vet, then go test -race in every Go module
#                  (with a throwaway PostgreSQL and etcd; CI=true makes their
#                  failure fatal)
#   make vet       go vet ./... in every Go module
#   make fmt       fail if gofmt would change any file
#   make bench     run the benchmark harness (bench/, if it exists)
#   make example   run examples/counter
#
# Extra go test flags: make test TESTFLAGS='-run TestFoo -v'

GO        ?= go
TESTFLAGS ?=

export GO

.DEFAULT_GOAL := test

.PHONY: all test vet fmt check bench example help

all: test

## test: static checks, then go test -race -count=1 -timeout 12m ./... in every module
test:
	bash scripts/test.sh $(TESTFLAGS)

## vet: go vet ./... in every module
vet:
	bash scripts/check.sh vet

## fmt: gofmt -l check (fails if any file is listed)
fmt:
	bash scripts/check.sh fmt

## check: fmt + vet
check:
	bash scripts/check.sh all

## bench: run the benchmark harness (cd bench && go run . all)
bench:
	@if [ -f bench/go.mod ]; then \
		cd bench && $(GO) run . all; \
	else \
		echo "bench/go.mod does not exist (yet): no benchmark harness to run"; \
	fi

## example: run the counter example
example:
	$(GO) run ./examples/counter

## help: list the targets
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
