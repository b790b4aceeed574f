#!/usr/bin/env bash
# GPU checks on a lent GPU: the GPU tests (TensorRT ones skip without tensorrt), the FP16 AutoCast
# ONNX through ONNX Runtime's CUDA provider (skips cleanly without it) and torch FP16, then the
# torch FP16 ViT-H benchmark.
# Usage (repo root): bash bench/gpu_checks.sh [--cpu-only] [OUTDIR]
#   --cpu-only: a dry run on a machine without CUDA: skips nvidia-smi, the GPU tests and the
#   benchmark, runs the FP16 ONNX check on the CPU (so a typo here fails here, not on the GPU).
# ../shared is not beside the checkout on a lent machine: set SKELSTREAM_SHARED to a copy
# holding skelcf/golden/crop_preprocessing.npz (e.g. carried in .cache/gpu_shared), and carry
# pydantic + pydantic_core + annotated_types + typing_inspection + typing_extensions wheels
# (cp312, manylinux) in .cache/whl. Carry .cache/gpu_onnx, made here by
#   .venv/bin/python bench/fp16_onnx_gpu_check.py --prepare .cache/gpu_onnx
set -uo pipefail
CPU_ONLY=0
if [ "${1:-}" = "--cpu-only" ]; then CPU_ONLY=1; shift; fi
OUTDIR=${1:-${OUT:-/tmp/gpu_checks}}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONUNBUFFERED=1
RC=0
step() {  # step NAME COMMAND...: run, tee the log, remember a failure, go on
  local name=$1; shift
  echo "== $name"
  "$@" 2>&1 | tee "$OUTDIR/$name.txt"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "== $name: exit $rc"; RC=1; }
}
# the GPU image has no pydantic (engine config): carried wheels in .cache/whl are installed aside
if ! $PY -c "import pydantic" 2>/dev/null && ls .cache/whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .cache/whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
step versions $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
if [ "$CPU_ONLY" -eq 1 ]; then
  step fp16_onnx $PY bench/fp16_onnx_gpu_check.py --cpu-only --onnx-dir .cache/gpu_onnx --json "$OUTDIR/fp16_onnx.json"
else
  step nvidia_smi nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,compute_cap --format=csv
  step fp16_onnx $PY bench/fp16_onnx_gpu_check.py --onnx-dir .cache/gpu_onnx --json "$OUTDIR/fp16_onnx.json"
  step gpu_tests $PY -m pytest -q -p no:cacheprovider -s -rs tests/test_skelcf_backends_gpu.py
  step bench_skelcf_gpu $PY bench/bench_skelcf_gpu.py --json "$OUTDIR/bench_skelcf_gpu.json"
  if $PY -c "import tensorrt, modelopt.onnx.autocast" 2>/dev/null; then
    step bench_skelcf_trt $PY bench/bench_skelcf_gpu.py --backend tensorrt --variant vit_b \
      --json "$OUTDIR/bench_skelcf_trt.json"
  else
    echo "== SKIP TensorRT benchmark: tensorrt or nvidia-modelopt is not importable"
  fi
  # issue 16: full-size SKEL-CF through Triton (the nvidia-pytriton tritonserver, Python backend on
  # CUDA, FP16) vs local torch FP16, per frame and crops/s with 8 concurrent pipelines (random weights)
  if $PY -c "import tritonclient.grpc, pytriton" 2>/dev/null; then
    step bench_triton_gpu $PY bench/bench_triton.py --variant vit_h --device cuda --persons 1,4,8 --pipelines 8 \
      --server-threads 4 --json "$OUTDIR/bench_triton_gpu.json"
  else
    echo "bench_triton: skipped (pip install 'tritonclient[grpc]<2.47' and --no-deps nvidia-pytriton==0.7.0)" | tee "$OUTDIR/bench_triton_gpu.txt"
  fi
fi
echo "gpu_checks: $([ $RC -eq 0 ] && echo ALL OK || echo SOME STEP FAILED) (logs in $OUTDIR)"
exit $RC
