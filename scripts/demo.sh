#!/usr/bin/env bash
# The system end to end, as far as it is built: real Kafka, Redis and Prometheus
# come up, the simulator streams card transactions, kcat (a third-party client)
# reads them, and riskstream's validating consumer accepts every one.
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

echo; echo "== 4. a malformed event from kcat goes to transactions.dlq with the reason"
echo 'card-demo|{"transaction_id":"bad-1","card_id":"card-demo","amount":-3,"currency":"EUR"}' \
  | kcat -P -b "$bootstrap" -t transactions -K '|'
$rs consume transactions --group "demo-$(date +%s)" --idle-timeout 5
kcat -C -b "$bootstrap" -t transactions.dlq -o -1 -e -q \
  -f 'dlq: %s\n    headers: %h\n'

echo; echo "== 5. riskstream status"
$rs status
echo; echo "The stack is still up: try 'riskstream produce', 'kcat -C -b $bootstrap -t transactions', 'make down'."
