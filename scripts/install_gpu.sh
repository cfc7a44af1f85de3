#!/usr/bin/env bash
# Turn this checkout's .venv into a GPU scorer's: onnxruntime-gpu instead of
# onnxruntime, PyTorch and Hummingbird for the tensor form of tree models.
# Needs an NVIDIA driver for CUDA 13; the CUDA and cuDNN libraries come as wheels
# with torch. Then `RISKSTREAM_SCORING_DEVICE=auto riskstream serve` (the default)
# compiles each model for CUDA at load and logs "cpu below N rows, else cuda".
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=".venv/bin/pip"
$PIP uninstall -y onnxruntime
$PIP install -e '.[gpu]'
# Its metadata pins onnx<=1.16.1, below ours; it works with ours (see pyproject.toml).
$PIP install --no-deps hummingbird-ml==0.4.12
.venv/bin/python - <<'PY'
import onnxruntime as ort
print("onnxruntime", ort.__version__, ort.get_available_providers())
PY
