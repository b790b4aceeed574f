#!/usr/bin/env bash
# GPU checks of issue 7 on a lent GPU: the GPU tests, then the torch FP16 ViT-H benchmark.
# Usage (repo root): bash bench/gpu_checks.sh [OUTDIR]
# ../shared is not beside the checkout on a lent machine: set SKELSTREAM_SHARED to a copy
# holding skelcf/golden/crop_preprocessing.npz (e.g. carried in .cache/gpu_shared), and carry
# pydantic + pydantic_core + annotated_types + typing_inspection + typing_extensions wheels
# (cp312, manylinux) in .cache/whl.
set -uo pipefail
OUTDIR=${1:-${OUT:-/tmp/gpu_checks}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1
# the GPU image has no pydantic (engine config): carried wheels in .cache/whl are installed aside
if ! $PY -c "import pydantic" 2>/dev/null && ls .cache/whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .cache/whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv | tee "$OUTDIR/nvidia_smi.txt"
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee "$OUTDIR/versions.txt"
$PY -m pytest -q -p no:cacheprovider -s tests/test_skelcf_backends_gpu.py 2>&1 | tee "$OUTDIR/gpu_tests.txt"
$PY bench/bench_skelcf_gpu.py --json "$OUTDIR/bench_skelcf_gpu.json" 2>&1 | tee "$OUTDIR/bench_skelcf_gpu.txt"
# issue 16: full-size SKEL-CF through Triton (the nvidia-pytriton tritonserver, Python backend on
# CUDA, FP16) vs local torch FP16, per frame and crops/s with 8 concurrent pipelines (random weights)
if $PY -c "import tritonclient.grpc, pytriton" 2>/dev/null; then
  $PY bench/bench_triton.py --variant vit_h --device cuda --persons 1,4,8 --pipelines 8 \
    --server-threads 4 --json "$OUTDIR/bench_triton_gpu.json" 2>&1 | tee "$OUTDIR/bench_triton_gpu.txt"
else
  echo "bench_triton: skipped (pip install 'tritonclient[grpc]<2.47' and --no-deps nvidia-pytriton==0.7.0)" | tee "$OUTDIR/bench_triton_gpu.txt"
fi
