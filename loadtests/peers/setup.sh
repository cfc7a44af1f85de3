#!/usr/bin/env bash
# Environments for the peer benchmark (loadtests/peers/run.py). Idempotent: a second run
# only checks stamps and perf_analyzer.
#
#   bash loadtests/peers/setup.sh
#
# Creates, under ${RISKSTREAM_PEERS_HOME:-$HOME/.cache/riskstream/peers}:
#   venvs/perf      tritonclient[all] 2.51.0 (bin/perf_analyzer 2.51.0) + libcudart.so.12
#   venvs/mlserver  MLServer 1.7.1 + mlserver-xgboost 1.7.1 (uvloop 0.21.0)
#   venvs/pytriton  nvidia-pytriton 0.7.0 (Triton 2.51) + onnxruntime 1.32.0
#   venvs/kserve    KServe 0.21.0 + onnxruntime 1.32.0
#   libb64/         libb64.so.0d from Debian's libb64-0d, when not installed system-wide
#   bin/perf_analyzer  wrapper that sets LD_LIBRARY_PATH for both libraries
# Each venv installs its full lock, loadtests/peers/requirements/<name>.txt, with
# --no-deps; a stamp (sha256 of the lock + interpreter) marks it done. The services'
# .venv and pyproject.toml are not touched. Environment: PYTHON (default python3.11).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOME_DIR="${RISKSTREAM_PEERS_HOME:-$HOME/.cache/riskstream/peers}"
PYTHON="${PYTHON:-python3.11}"
VENVS=(perf mlserver pytriton kserve)
LIBB64_DIR="$HOME_DIR/libb64/usr/lib/x86_64-linux-gnu"
start=$(date +%s)

say() { printf '[peers-setup] %s\n' "$*"; }
mkdir -p "$HOME_DIR/venvs" "$HOME_DIR/bin" "$HOME_DIR/logs"
command -v "$PYTHON" >/dev/null || { say "no $PYTHON on PATH (set PYTHON=...)"; exit 1; }
py_id="$("$PYTHON" -c 'import sys; print(sys.version.split()[0], sys.prefix)')"
say "home: $HOME_DIR; interpreter: $py_id"

stamp_of() { # lock file -> expected stamp content
    printf '%s %s\n' "$(sha256sum "$HERE/requirements/$1.txt" | cut -d' ' -f1)" "$py_id"
}

install_venv() { # name; output goes to logs/<name>.log
    local name="$1" venv="$HOME_DIR/venvs/$1"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        -r "$HERE/requirements/$name.txt"
    stamp_of "$name" > "$venv/.riskstream-lock"
}

# 1. venvs: the missing or stale ones, in parallel (downloads dominate).
pids=() names=()
for name in "${VENVS[@]}"; do
    venv="$HOME_DIR/venvs/$name"
    if [[ -f "$venv/.riskstream-lock" && "$(cat "$venv/.riskstream-lock")" == "$(stamp_of "$name")" ]]; then
        say "venv $name: up to date (stamp matches requirements/$name.txt)"
        continue
    fi
    say "venv $name: installing requirements/$name.txt (log: logs/$name.log)"
    install_venv "$name" > "$HOME_DIR/logs/$name.log" 2>&1 &
    pids+=($!) names+=("$name")
done
failed=0
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then
        say "venv ${names[$i]}: installed"
    else
        say "venv ${names[$i]}: FAILED, last lines of logs/${names[$i]}.log:"
        tail -n 15 "$HOME_DIR/logs/${names[$i]}.log" >&2
        failed=1
    fi
done
[[ $failed == 0 ]] || exit 1

# 2. libb64.so.0d for perf_analyzer: system package, else extracted into the peers home.
if ldconfig -p | grep -q 'libb64\.so\.0d'; then
    say "libb64.so.0d: installed system-wide"
elif [[ -f "$LIBB64_DIR/libb64.so.0d" ]]; then
    say "libb64.so.0d: present in $LIBB64_DIR"
else
    installed=0
    if [[ $(id -u) == 0 ]]; then
        say "libb64.so.0d: apt-get install -y libb64-0d"
        if apt-get install -y -q -o DPkg::Lock::Timeout=120 libb64-0d >"$HOME_DIR/logs/apt.log" 2>&1 \
            || { apt-get update -q >>"$HOME_DIR/logs/apt.log" 2>&1 \
                 && apt-get install -y -q -o DPkg::Lock::Timeout=120 libb64-0d >>"$HOME_DIR/logs/apt.log" 2>&1; }; then
            installed=1
        else
            say "apt-get install failed (logs/apt.log); extracting the package instead"
        fi
    fi
    if [[ $installed == 0 ]]; then
        debs="$HOME_DIR/debs"
        mkdir -p "$debs"
        (cd "$debs" && apt-get download libb64-0d >"$HOME_DIR/logs/apt-download.log" 2>&1)
        dpkg-deb -x "$(ls "$debs"/libb64-0d_*.deb | head -n1)" "$HOME_DIR/libb64"
        say "libb64.so.0d: extracted into $LIBB64_DIR"
    fi
fi

# 3. perf_analyzer wrapper with both libraries on LD_LIBRARY_PATH.
site="$HOME_DIR/venvs/perf/lib/python3.11/site-packages"
cat > "$HOME_DIR/bin/perf_analyzer" <<EOF
#!/bin/sh
# Written by loadtests/peers/setup.sh: perf_analyzer 2.51.0 with libb64.so.0d and libcudart.so.12.
LD_LIBRARY_PATH="$LIBB64_DIR:$site/nvidia/cuda_runtime/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$HOME_DIR/venvs/perf/bin/perf_analyzer" "\$@"
EOF
chmod +x "$HOME_DIR/bin/perf_analyzer"
version="$("$HOME_DIR/bin/perf_analyzer" --version 2>&1 | head -n1)" \
    || { say "perf_analyzer does not start: $version"; exit 1; }
say "perf_analyzer: $version ($HOME_DIR/bin/perf_analyzer)"

# 4. Imports, for venvs installed just now.
for name in "${names[@]}"; do
    case "$name" in
        perf) mod="tritonclient.grpc" ;;
        mlserver) mod="mlserver, mlserver_xgboost, xgboost, uvloop" ;;
        pytriton) mod="pytriton.triton, onnxruntime" ;;
        kserve) mod="kserve, onnxruntime" ;;
    esac
    "$HOME_DIR/venvs/$name/bin/python" -c "import $mod" || { say "venv $name: import $mod failed"; exit 1; }
    say "venv $name: import $mod ok"
done
say "done in $(( $(date +%s) - start )) s"
