#!/usr/bin/env bash
# GPU checks of issue 7 on a lent GPU: the GPU tests, then the torch FP16 ViT-H benchmark.
# Usage (repo root): bash bench/gpu_checks.sh [OUTDIR]
# ../shared is not beside the checkout on a lent machine: set SKELSTREAM_SHARED to a copy
# holding skelcf/golden/crop_preprocessing.npz (e.g. carried in .cache/gpu_shared).
set -uo pipefail
OUTDIR=${1:-${OUT:-/tmp/gpu_checks}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUTDIR/nvidia_smi.txt"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee "$OUTDIR/versions.txt"
$PY -m pytest -q -p no:cacheprovider -s tests/test_skelcf_backends_gpu.py 2>&1 | tee "$OUTDIR/gpu_tests.txt"
$PY bench/bench_skelcf_gpu.py --json "$OUTDIR/bench_skelcf_gpu.json" 2>&1 | tee "$OUTDIR/bench_skelcf_gpu.txt"
