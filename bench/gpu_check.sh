#!/usr/bin/env bash
# The device check (issue 25): on one GPU, in under 10 minutes, with no network, what holds of
# tracekd's GPU path: `tracekd run` on the tiny Llama 3 model and on Llama-3.2-1B's architecture
# with random weights (QLoRA training, vLLM engines one after another, training after vLLM), and
# LoRA throughput / MFU of bench/gpu_lora_sft.py. Writes one JSON (bench/gpu_check.py says what).
#
#   bench/gpu_check.sh [--dry] [OUT_JSON]     (default OUT_JSON: bench/results/gpu_check-<date>.json)
#
# --dry: the same steps on the CPU, small; tests/test_devices.py runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=()
if [[ "${1:-}" == "--dry" ]]; then DRY=(--dry); shift; fi
OUT=${1:-bench/results/gpu_check-$(date +%Y%m%d-%H%M).json}
PY=${PYTHON:-python}
[[ -x .venv/bin/python && -z "${PYTHON:-}" ]] && PY=.venv/bin/python
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d -t tracekd-gpu-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$PY" bench/gpu_check.py "${DRY[@]}" --work "$WORK" --out "$OUT"
