#!/usr/bin/env bash
# A guided tour of the pieces (the main demo is `riskstream demo`, scripts/demo.sh): real Kafka, Redis, Prometheus and
# the PyFlink feature job come up, the simulator streams card transactions, kcat (a
# third-party client) reads them, the job's per-card features appear in Redis, and
# riskstream's validating consumer sends a malformed event to the DLQ; a baseline
# model is trained and published, and the gRPC scorer scores with it.
# Leaves the stack running; `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
rs=.venv/bin/riskstream
bootstrap=127.0.0.1:${RISKSTREAM_KAFKA_PORT:-9092}

echo "== 1. riskstream up"
$rs up

echo; echo "== 2. riskstream produce --rate 1000 --duration 10"
$rs produce --rate 1000 --duration 10
echo

echo; echo "== 3. kcat, a third-party client, reads the transactions topic"
kcat -C -b "$bootstrap" -t transactions -o -3 -e -q -f 'key=%k partition=%p %s\n' | tail -3

echo; echo "== 4. the Flink job computed each card's features into Redis (Feast layout)"
card=$(kcat -C -b "$bootstrap" -t transactions -o -1 -e -q -f '%k\n' -p 0 | tail -1)
sleep 2
$rs features "$card" | head -12 || echo "(card $card not in Redis yet: see riskstream status)"

echo; echo "== 5. a malformed event from kcat goes to transactions.dlq with the reason"
echo 'card-demo|{"transaction_id":"bad-1","card_id":"card-demo","amount":-3,"currency":"EUR"}' \
  | kcat -P -b "$bootstrap" -t transactions -K '|'
$rs consume transactions --group "demo-$(date +%s)" --idle-timeout 5
kcat -C -b "$bootstrap" -t transactions.dlq -o -1 -e -q \
  -f 'dlq: %s\n    headers: %h\n'

echo; echo "== 6. train a baseline model (simulated data → reference features → XGBoost → ONNX, parity-checked) and publish it"
$rs train-baseline --days 30 --burn-in-days 5 --validation-days 4 --holdout-days 4 --trees 150 --publish
sleep 2
$rs rollout list

echo; echo "== 7. score a transaction of that card over gRPC: its Redis features, the model, reasons"
$rs score --card "$card" --terminal term-demo --amount 480 --explain

echo; echo "== 8. a bad request is refused with the field named; grpcurl (third party) calls health through reflection"
$rs score --card "$card" --terminal term-demo --amount -1 || true
.venv/bin/grpcurl -plaintext 127.0.0.1:${RISKSTREAM_SCORING_PORT:-50051} grpc.health.v1.Health/Check

echo; echo "== 9. riskstream status"
$rs status
echo; echo "The stack is still up: try 'riskstream produce', 'kcat -C -b $bootstrap -t transactions', 'make down'."
