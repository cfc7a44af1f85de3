#!/usr/bin/env bash
# The system end to end: `riskstream demo` brings up a private stack (its own state
# directory and ports, so a running stack is left alone), trains the first model,
# streams the simulator while a built-in client calls Score, injects drift halfway and
# shows the drift detection, the retrain, the canary and the promotion; it ends with a
# summary and an HTML report, and stops its stack (pass --keep to leave it up).
# scripts/tour.sh is the older guided tour of the pieces (kcat, DLQ, features, score).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/riskstream demo "$@"
