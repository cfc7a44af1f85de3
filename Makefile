# riskstream — the commands the README names. Everything runs from the repo root.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install up down status demo tour test test-unit lint proto bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)          ## services environment (.venv)

up: install                ## start Kafka, Redis, Prometheus; create topics
	$(BIN)/riskstream up

down:                      ## stop what `up` started
	$(BIN)/riskstream down

status:
	$(BIN)/riskstream status

demo: install              ## the system end to end: riskstream demo (drift → retrain → canary → promotion)
	bash scripts/demo.sh

tour: install              ## a guided tour of the pieces on the shared stack (kcat, DLQ, features, score)
	bash scripts/tour.sh

# Pure kernels are type-checked strictly; adapters and wiring with mypy's defaults.
KERNELS := services/common/errors.py services/common/events.py services/common/pii.py \
           services/common/iso_codes.py services/producer/config.py services/producer/events.py \
           services/producer/pacing.py services/producer/profiles.py services/producer/replay.py \
           services/producer/scenarios.py services/producer/simulator.py \
           services/feature_store/definitions.py \
           services/registry/metadata.py services/registry/calibration.py \
           services/registry/transitions.py services/registry/model_card.py \
           services/registry/catalog.py services/registry/retention.py \
           services/registry/approval.py \
           services/scoring/decision.py services/scoring/rules.py services/scoring/routing.py \
           services/scoring/vectorize.py services/scoring/batching.py \
           services/scoring/reasons.py services/registry/rollout.py \
           services/scoring/score_events.py \
           services/controller/windows.py services/controller/divergence.py \
           services/controller/precision.py services/controller/comparison.py \
           services/controller/roles.py services/controller/policy.py \
           services/controller/baseline.py services/controller/guards.py \
           services/trainer/gate.py services/trainer/segments.py services/trainer/distributions.py \
           services/trainer/metrics.py \
           services/demo/config.py services/demo/timeline.py services/demo/summary.py \
           services/demo/charts.py services/demo/report.py \
           services/registry/reference.py services/drift/two_sample.py services/drift/correction.py \
           services/drift/windows.py services/drift/window_report.py \
           services/drift/performance.py services/drift/policy.py services/drift/monitor.py
TYPED   := services/common services/stack services/cli services/producer services/registry \
           services/trainer services/scoring services/controller services/demo services/drift

lint: install              ## ruff, mypy (strict on kernels); generated-code freshness is a test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(TYPED)
	$(BIN)/mypy --strict $(KERNELS)

test: lint                 ## everything: lint, unit and integration tests (starts the stack if needed)
	$(BIN)/pytest -q --durations=40

test-unit: install         ## fast tests, no Kafka/Redis needed
	$(BIN)/pytest -q -m "not integration"

proto: install             ## regenerate proto/riskstream/v1/*_pb2*.py
	$(BIN)/python scripts/gen_proto.py

bench: up                  ## producer/consumer throughput, cold `up` time (docs/BENCHMARKS.md)
	$(BIN)/python -m loadtests.kafka_throughput

clean: down
	rm -rf .state
