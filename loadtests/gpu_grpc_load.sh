#!/bin/bash
# Device check (issue 4 follow-up): the riskstream scorer as a real gRPC server
# process on a GPU host. OIP ModelInfer, closed loop (loadtests/oip_infer_load.py)
# at concurrency 1/8/32 x rows per request 1/64/1024/4096, once with the scorer on
# the CPU only and once with CUDA (RISKSTREAM_SCORING_DEVICE), each from a fresh
# scorer process (loadtests/standalone_scorer.py: the scorer's own start-up, the
# model from .gpuwork/model instead of Kafka). Writes $OUT/grpc_gpu.json and
# $OUT/grpc_gpu.log (+ each scorer's log, driver JSON, probe scores).
#
#   bash loadtests/gpu_grpc_load.sh            # on the device, from the repo root
#   DRY=1 PY=/tmp/gpuvenv/bin/python SITE=/tmp/gpusite OUT=/tmp/grpc-dry bash loadtests/gpu_grpc_load.sh
#
# What must be there (the host has no network; .gpuwork/ is git-ignored and carried):
#   .gpuwork/model    metadata.json, model.onnx, model.xgb.json of the artifact served
#   .gpuwork/small, .gpuwork/grpcwhl   wheels the image lacks, at the .venv's versions
#                     (grpcio*, redis, hiredis, hdrhistogram, protobuf, confluent-kafka,
#                     cryptography, xgboost-cpu, hummingbird-ml, onnxconverter-common, dill)
#   onnxruntime-gpu   an xz'd tar of its site-packages folder in 4 parts of < 64 MiB,
#                     carried one per call into /tmp/parts on the warm machine first
#
# Each stage is guarded (a failure is logged and the next stage runs) and bounded
# by `timeout`, and every timeout is capped by what is left of TOTAL_S (370 s).
set -uo pipefail
T0=$(date +%s)
W=.gpuwork
DRY=${DRY:-0}
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}
OUT=${OUT:-/tmp/grpc-out}
TOTAL_S=${TOTAL_S:-370}
if [ "$DRY" = 1 ]; then
  LEGS=${LEGS:-cpu}; CONC=${CONC:-1,8}; SIZES=${SIZES:-1,64,1024,4096}
  WARMUP=${WARMUP:-0.2}; DUR=${DUR:-0.4}; GRID_BUDGET=${GRID_BUDGET:-12}
else
  LEGS=${LEGS:-cpu cuda}; CONC=${CONC:-1,8,32}; SIZES=${SIZES:-1,64,1024,4096}
  WARMUP=${WARMUP:-0.5}; DUR=${DUR:-2.5}; GRID_BUDGET=${GRID_BUDGET:-48}
fi
mkdir -p "$OUT" "$SITE"
LOG=$OUT/grpc_gpu.log

left() { echo $(( TOTAL_S - ($(date +%s) - T0) )); }
# cap SECONDS [RESERVE]: SECONDS, or less so that RESERVE seconds stay for later stages.
cap() { local l; l=$(( $(left) - ${2:-0} )); [ "$l" -lt 5 ] && l=5; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
stage() { echo; echo "=== [$(( $(date +%s) - T0 )) s] $*"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

main() {
  stage "host (DRY=$DRY, legs: $LEGS, grid: concurrency $CONC x rows $SIZES, ${WARMUP}+${DUR} s a point)"
  date -u
  if [ "$DRY" != 1 ]; then
    timeout 20 nvidia-smi || echo "nvidia-smi failed"
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
  fi
  lscpu | grep -E "Model name|^CPU\(s\)" ; nproc; uptime
  "$PY" --version
  ls -la "$W" "$W/model" 2>&1 | head -30

  stage "onnxruntime-gpu into $SITE"
  if [ -d "$SITE/onnxruntime" ]; then
    echo "already there: $SITE/onnxruntime"
  elif [ "$DRY" = 1 ] && [ "${ORT:-0}" != 1 ]; then
    echo "DRY: skipped (ORT=1 extracts it anyway); the image's onnxruntime serves"
  else
    # The parts as staged by earlier calls: /tmp/parts, else left in the tree's .gpuwork/.
    PARTS=/tmp/parts
    if ! compgen -G "$PARTS/ort.part0*" > /dev/null && [ "$(ls "$W"/ort.part0* 2>/dev/null | wc -l)" = 4 ]; then
      PARTS=$W
    fi
    if compgen -G "$PARTS/ort.part0*" > /dev/null; then
      ls -la "$PARTS"/ort.part0*
      timeout "$(cap 150 200)" bash -c "cat '$PARTS'/ort.part0* | xz -d -T0 | tar -x -C '$SITE'" \
        || echo "ORT extraction FAILED (rc $?): the CUDA leg will have no CUDA provider"
      ls -d "$SITE"/onnxruntime* 2>&1
    else
      echo "no ort.part0* in /tmp/parts or $W, no $SITE/onnxruntime: the image's onnxruntime serves"
    fi
  fi

  stage "wheels into $SITE"
  ls "$W/small" "$W/grpcwhl"
  timeout "$(cap 150 200)" "$PY" -m pip install -q --no-index --no-deps --no-compile \
    --no-cache-dir --upgrade --target "$SITE" "$W"/small/*.whl "$W"/grpcwhl/*.whl \
    || echo "pip install FAILED (rc $?)"
  export PYTHONPATH=$SITE:$PWD:$PWD/proto PYTHONUNBUFFERED=1

  stage "versions and imports"
  timeout "$(cap 60 180)" "$PY" - <<'PY' || echo "import check FAILED (rc $?)"
import importlib, os
for name in ("grpc", "google.protobuf", "numpy", "onnxruntime", "prometheus_client", "redis",
             "hiredis", "confluent_kafka", "cryptography", "scipy", "xgboost", "typing_extensions",
             "hdrh", "torch", "hummingbird"):
    try:
        mod = importlib.import_module(name)
        print(f"{name:18} {getattr(mod, '__version__', '?'):12} {os.path.dirname(mod.__file__ or '')}")
    except Exception as exc:  # report and go on
        print(f"{name:18} MISSING: {type(exc).__name__}: {exc}")
import onnxruntime as ort
print("ORT providers", ort.get_available_providers())
import services.scoring.__main__, loadtests.standalone_scorer, loadtests.oip_infer_load  # noqa
print("scorer, launcher and driver import")
PY
  if [ "$DRY" != 1 ]; then
    timeout "$(cap 60 180)" "$PY" -c "import torch, hummingbird.ml; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'); print('hummingbird', hummingbird.__version__)" \
      || echo "torch/hummingbird check FAILED (rc $?)"
  fi

  STATE=$(mktemp -d /tmp/riskstream-grpc-XXXX)
  "$PY" -c "import json, secrets, sys; json.dump({'score': 'score-' + secrets.token_urlsafe(24), 'admin': 'admin-' + secrets.token_urlsafe(24)}, open(sys.argv[1], 'w'))" "$STATE/tokens.json"
  chmod 600 "$STATE/tokens.json"

  for LEG in $LEGS; do
    stage "leg $LEG: scorer (RISKSTREAM_SCORING_DEVICE=$LEG)"
    PORT=$(free_port); MPORT=$(free_port)
    # What is left, less a reserve for the legs after this one and the summary.
    local after=20; [ "$LEG" = cpu ] && case " $LEGS " in *" cuda "*) after=130;; esac
    local budget; budget=$(cap 240 "$after")
    RISKSTREAM_HOME=$STATE/home-$LEG RISKSTREAM_SCORING_STATE_DIR=$STATE/$LEG \
    RISKSTREAM_SCORING_PORT=$PORT RISKSTREAM_SCORING_METRICS_PORT=$MPORT \
    RISKSTREAM_SCORING_TOKENS_FILE=$STATE/tokens.json RISKSTREAM_SCORING_DEVICE=$LEG \
    RISKSTREAM_SCORING_SCORE_BUFFER=1000 \
      timeout -k 5 "$budget" "$PY" -m loadtests.standalone_scorer --model-dir "$W/model" \
      > "$OUT/scorer_$LEG.log" 2>&1 &
    SPID=$!
    GPID=""
    if [ "$DRY" != 1 ] && [ "$LEG" = cuda ]; then
      nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader \
        -lms 500 > "$OUT/gpu_util_$LEG.csv" 2>&1 &
      GPID=$!
    fi
    stage "leg $LEG: driver (port $PORT, metrics $MPORT, budget ${budget} s)"
    timeout "$(( budget - 3 ))" "$PY" -m loadtests.oip_infer_load --target "127.0.0.1:$PORT" \
      --token-file "$STATE/tokens.json" --rows-file "$W/model/rows.npy" \
      --concurrency "$CONC" --rows-per-request "$SIZES" --warmup-s "$WARMUP" --duration-s "$DUR" \
      --budget-s "$GRID_BUDGET" --channels 4 --metrics-url "http://127.0.0.1:$MPORT/metrics" \
      --scores-dir "$OUT/scores_$LEG" --wait-ready-s "$(( budget - GRID_BUDGET - 25 > 20 ? budget - GRID_BUDGET - 25 : 20 ))" \
      --server-pid "$SPID" --json "$OUT/oip_$LEG.json"
    echo "driver rc $?"
    curl -s --max-time 5 "http://127.0.0.1:$MPORT/metrics" > "$OUT/metrics_$LEG.txt" 2>/dev/null \
      || "$PY" -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" \
           "http://127.0.0.1:$MPORT/metrics" > "$OUT/metrics_$LEG.txt" 2>/dev/null || true
    stage "leg $LEG: stop scorer"
    [ -n "$GPID" ] && kill "$GPID" 2>/dev/null
    kill -TERM "$SPID" 2>/dev/null
    for _ in $(seq 1 40); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$SPID" 2>/dev/null; then  # the scorer is timeout's child: kill it, then timeout
      echo "scorer still up after 20 s: SIGKILL"; pkill -KILL -P "$SPID"; kill -KILL "$SPID"
    fi
    wait "$SPID"; echo "scorer rc $?"
    grep -E "loaded \(|stays on the CPU|refused|standalone scorer ready|re-stamped|Traceback|Error" \
      "$OUT/scorer_$LEG.log" | head -20
    echo "(last lines)"; tail -3 "$OUT/scorer_$LEG.log"
  done

  stage "summary -> $OUT/grpc_gpu.json"
  timeout "$(cap 30)" "$PY" - "$OUT" "$LEGS" "$DRY" <<'PY' || echo "summary FAILED (rc $?)"
import json, os, platform, re, sys
import numpy as np
out, legs, dry = sys.argv[1], sys.argv[2].split(), sys.argv[3] == "1"
result = {"check": "riskstream scorer gRPC ModelInfer closed loop, CPU vs CUDA", "dry": dry,
          "host": {"python": platform.python_version(), "cpus": os.cpu_count(),
                   "machine": platform.machine()}, "legs": {}}
try:
    import subprocess
    result["host"]["gpu"] = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True, text=True, timeout=10).stdout.strip()
except Exception as exc:
    result["host"]["gpu"] = f"none ({type(exc).__name__})"
for leg in legs:
    entry = {}
    try:
        lines = open(os.path.join(out, f"scorer_{leg}.log"), errors="replace").read().splitlines()
        entry["form_log"] = [l for l in lines if re.search(
            r"loaded \(|stays on the CPU|refused|re-stamped|standalone scorer ready", l)]
        ready = [l for l in lines if "standalone scorer ready" in l]
        if ready:
            entry["server"] = json.loads(ready[-1].split("standalone scorer ready", 1)[1])
        m = [re.search(r"cpu below (\d+) rows, else cuda", l) for l in lines]
        m = [x for x in m if x]
        entry["min_gpu_rows"] = int(m[-1].group(1)) if m else None
        entry["errors_in_log"] = [l for l in lines if "Traceback" in l or " ERROR " in l][:10]
    except OSError as exc:
        entry["log_error"] = str(exc)
    try:
        driver = json.load(open(os.path.join(out, f"oip_{leg}.json")))
        entry["driver"] = driver
        n_gpu = entry.get("min_gpu_rows")
        max_batch = (entry.get("server") or {}).get("max_batch_size", 64)
        for p in driver.get("points", []):
            n = p["rows_per_request"]
            if n_gpu is None:
                p["form"] = "cpu"
            elif n > max_batch:
                p["form"] = "cuda" if n >= n_gpu else "cpu"
            else:
                mean = (p.get("server") or {}).get("mean_batch_rows")
                p["form"] = (f"micro-batched (mean {mean} rows a batch): "
                             + ("cuda" if mean and mean >= n_gpu else "cpu, mostly"))
    except (OSError, ValueError) as exc:
        entry["driver_error"] = str(exc)
    result["legs"][leg] = entry
if {"cpu", "cuda"} <= set(legs):
    gaps = {}
    for name in sorted(os.listdir(os.path.join(out, "scores_cpu"))) if os.path.isdir(os.path.join(out, "scores_cpu")) else []:
        other = os.path.join(out, "scores_cuda", name)
        if os.path.exists(other):
            a, b = np.load(os.path.join(out, "scores_cpu", name)), np.load(other)
            gaps[name] = float(np.max(np.abs(a.astype(np.float64) - b))) if a.shape == b.shape else "shape differs"
    result["score_gap_cpu_vs_cuda"] = gaps
json.dump(result, open(os.path.join(out, "grpc_gpu.json"), "w"), indent=1)
print("| leg | form | conc | rows/req | req/s | rows/s | p50 ms | p99 ms | p99.9 ms | errors | client cores | mean batch rows |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
for leg, entry in result["legs"].items():
    for p in entry.get("driver", {}).get("points", []):
        lat = p["latency"]
        print(f"| {leg} | {p.get('form','?')} | {p['concurrency']} | {p['rows_per_request']} | "
              f"{p['requests_per_s']:,.0f} | {p['rows_per_s']:,.0f} | {lat.get('p50_ms', float('nan')):.3f} | "
              f"{lat.get('p99_ms', float('nan')):.3f} | {lat.get('p999_ms', float('nan')):.3f} | "
              f"{p['errors'] or 0} | {p['client_cores']} | {(p.get('server') or {}).get('mean_batch_rows')} |")
    for s in entry.get("driver", {}).get("skipped", []):
        print(f"| {leg} | skipped | {s['concurrency']} | {s['rows_per_request']} | {s['reason']} |")
print("min_gpu_rows:", {leg: e.get("min_gpu_rows") for leg, e in result["legs"].items()})
print("score gap cpu vs cuda:", result.get("score_gap_cpu_vs_cuda"))
PY
  rm -rf "$STATE"
  stage "done in $(( $(date +%s) - T0 )) s"
  ls -la "$OUT"
}

main 2>&1 | tee "$LOG"
