# llmscaler: see README.md. Everything here needs only Go; `make tools` builds the local stack's binaries.
SHELL := /bin/bash
GO ?= go
BIN := bin
GOTEST_FLAGS ?= -count=1 -timeout 25m

.PHONY: all tools build test vet demo config-reference dev-up dev-down dev-status clean replay-histories bench bench-scale

all: build

## tools: build the pinned binaries of the local stack into bin/ (first run: ~15 min; then seconds)
tools:
	@hack/tools.sh

## build: build the llmscaler binary into bin/
build:
	$(GO) build -o $(BIN)/llmscaler ./cmd/llmscaler

## vet: static checks
vet:
	$(GO) vet ./...

## test: what CI runs: tools, vet, and every test (unit and against the real local stack)
test: tools vet
	$(GO) test $(GOTEST_FLAGS) ./...

## demo: the whole thing on this machine: stack, example model, worker, autoscaler, trace replay, report
demo: tools build
	$(GO) run ./internal/demo

## config-reference: regenerate the README's configuration reference from the config structs
config-reference:
	$(GO) run ./hack/configref

## dev-up: start the local stack (Temporal + Web UI, kwok cluster + metrics-server, Prometheus)
dev-up: tools
	$(GO) run ./internal/testbed/devstack up

## dev-down: stop the local stack; no process of it keeps running
dev-down:
	$(GO) run ./internal/testbed/devstack down

## dev-status: is the local stack running, and how to reach it
dev-status:
	$(GO) run ./internal/testbed/devstack status

## clean: remove the stack state and the llmscaler binary (keeps the built tools)
clean: dev-down
	rm -rf .dev $(BIN)/llmscaler

## replay-histories: record fresh workflow histories on the local stack for the replay test (commit them;
## histories named v0-* are kept: they are runs of older workflow code that must still replay)
replay-histories: tools
	find workflows/testdata/histories -name "*.json" ! -name "v0-*" -delete
	LLMSCALER_UPDATE_HISTORIES=1 $(GO) test -count=1 -timeout 15m -run 'TestScaleOutThenScaleIn|TestAScaleInTakesEveryVictim|TestNodeThatNever|TestPDB|TestLoadReturning|TestOverrides|TestAWSAutoScalingGroupSagas|TestAWSCapacity' ./e2e/

## bench: the benchmarks (policy evaluation cost; the simulator's speed; history events per no-op tick on the local stack)
bench: tools
	$(GO) test -run XXX -bench . -benchtime 2s ./policy/
	$(GO) test -run XXX -bench . -benchtime 3x ./internal/sim/
	$(GO) test -run XXX -bench NoOpTick ./e2e/

## bench-scale: 100, 500 and 1,000 model workflows on one worker against the dev server (about 10 min; the
## counts: LLMSCALER_SCALE_MODELS=100,500; the SDK's two workflow task pollers: LLMSCALER_SCALE_POLLERS=2)
bench-scale: tools
	$(GO) test -count=1 -timeout 60m -run XXX -bench 'OrchestratorScale$$' -benchtime 1x ./e2e/
