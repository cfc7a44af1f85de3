#!/usr/bin/env bash
# Create or refresh the PyFlink job's Python environment, .venv-flink, at the
# repository root, from flink_jobs/requirements.txt (why it is separate from the
# services' .venv: docs/ENVIRONMENTS.md).
#
# Idempotent: a stamp inside the venv records the sha256 of the requirements
# file and the interpreter version; when both match and the venv's python
# still starts, the script exits at once without touching the network.
# Otherwise the venv is rebuilt from scratch (exact pins, so no stale packages
# survive), and the stamp is written only after a successful install, so an
# interrupted run is simply redone next time.
#
# Environment:
#   PYTHON      interpreter to build the venv with (default: python3.11)
#   FLINK_VENV  where to put the venv (default: <repo>/.venv-flink)
#
# Prints nothing when the venv is up to date; one line to stderr when it builds.
# A cold build downloads ~300 MB and takes about 1.5 min (~860 MB installed).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3.11}"
venv="${FLINK_VENV:-$repo_root/.venv-flink}"
requirements="$repo_root/flink_jobs/requirements.txt"
stamp="$venv/.requirements.stamp"

if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup_flink_env: $python not found (PyFlink 2.3 needs CPython 3.9-3.12; the pins are for 3.11)" >&2
    exit 1
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import platform; print(platform.python_version())')"

if [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
    exit 0
fi

echo "setup_flink_env: building $venv from flink_jobs/requirements.txt" >&2
start=$SECONDS
rm -rf "$venv"
"$python" -m venv "$venv"
PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 \
    "$venv/bin/python" -m pip install --quiet --requirement "$requirements"
"$venv/bin/python" -c 'import pyflink, confluent_kafka, redis' # fail here, not in the job
printf '%s\n' "$want" >"$stamp"
echo "setup_flink_env: done in $((SECONDS - start)) s" >&2
