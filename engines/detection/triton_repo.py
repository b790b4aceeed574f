"""Write a Triton model repository for the user's YOLO-family detector (ONNX).

    python -m engines.detection.triton_repo --onnx yolo11n.onnx --out model_repository/

Models written (names are what `detector.triton.model_name` selects), all with the same I/O:
images (B, 3, S, S) UINT8 RGB letterboxed -> output0 FP32 (the export's raw first output):
- `yolo_trt`: TensorRT backend; the repository carries the ONNX and `build_plan.sh` (trtexec
  --fp16 inside the serving container: a plan is tied to its TensorRT version and GPU);
- `yolo_onnx`: ONNX Runtime backend (TensorRT execution provider in FP16 on a GPU);
- `yolo_py` (`--backends python`): the same ONNX run by onnxruntime in Triton's Python backend,
  for a server without those backends (the nvidia-pytriton tritonserver of the tests).

The uint8 -> [0, 1] float scaling is put in front of the user's graph (Cast, Mul by 1/255, and a
Cast to FP16 for an FP16 export), so a client sends a quarter of the bytes and the wrapped graph
gives what the original gives on `letterbox()`'s float blob (checked in ONNX Runtime when written).
An export with a dynamic batch axis gets dynamic batching; a batch-1 export is served without
(max_batch_size 0, dims [1, 3, S, S]).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from engines.skelcf.triton_repo import (build_plan_script, model_config, print_written, python_code_path,
                                       write_config)
from stream.errors import EngineError, require

BACKENDS = ("tensorrt", "onnxruntime", "python")
MODEL_NAMES = {"tensorrt": "yolo_trt", "onnxruntime": "yolo_onnx", "python": "yolo_py"}
PARITY_ATOL = 1e-5


def uint8_detector_onnx(src: Path, dst: Path) -> dict:
    """Write `src` with a uint8 input `images` scaled to [0, 1] in front and its first output
    named `output0` (FP32). Returns {'size': S, 'batched': dynamic batch axis, 'output_dims'}."""
    onnx = require("onnx", "cpu", "writing a Triton detector repository")
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    g = model.graph
    init = {i.name for i in g.initializer}
    ins = [i for i in g.input if i.name not in init]
    if len(ins) != 1:
        raise EngineError(f"detector '{src}' has {len(ins)} inputs; one image input is expected")
    old = ins[0]
    dims = old.type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in dims]
    if len(shape) != 4 or shape[1] != 3 or shape[2] <= 0 or shape[2] != shape[3]:
        raise EngineError(f"detector '{src}' takes {shape}; a square (B, 3, S, S) image with a fixed "
                          "size S is expected (export with a fixed imgsz)")
    if shape[0] not in (-1, 1):
        raise EngineError(f"detector '{src}' has a fixed batch of {shape[0]}; export with batch 1 "
                          "or a dynamic batch axis")
    elem = old.type.tensor_type.elem_type
    scaled = f"{old.name}__scaled"
    for node in g.node:  # the original input is now computed from the uint8 one
        node.input[:] = [scaled if n == old.name else n for n in node.input]
    g.input.remove(old)
    batch = "batch" if shape[0] == -1 else 1
    g.input.insert(0, helper.make_tensor_value_info("images", TensorProto.UINT8, [batch, 3, shape[2], shape[3]]))
    k = numpy_helper.from_array(np.array(1.0 / 255.0, np.float32), name="images__inv255")
    g.initializer.append(k)
    pre = [helper.make_node("Cast", ["images"], ["images__f32"], to=TensorProto.FLOAT),
           helper.make_node("Mul", ["images__f32", "images__inv255"],
                            [scaled if elem == TensorProto.FLOAT else "images__f32s"])]
    if elem != TensorProto.FLOAT:
        pre.append(helper.make_node("Cast", ["images__f32s"], [scaled], to=elem))
    for i, n in enumerate(pre):
        g.node.insert(i, n)
    first = g.output[0]
    out_elem = first.type.tensor_type.elem_type
    raw = f"{first.name}__raw"  # the graph's own first output, renamed so `output0` is free
    for node in g.node:
        node.output[:] = [raw if n == first.name else n for n in node.output]
        node.input[:] = [raw if n == first.name else n for n in node.input]
    post = helper.make_node("Cast", [raw], ["output0"], to=TensorProto.FLOAT) \
        if out_elem != TensorProto.FLOAT else helper.make_node("Identity", [raw], ["output0"])
    g.node.append(post)
    out_dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else "n" + str(j)
                for j, d in enumerate(first.type.tensor_type.shape.dim)]
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_dims or None))
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return {"size": shape[2], "batched": shape[0] == -1, "src_input": old.name}


def check_parity(src: Path, wrapped: Path, size: int, src_input: str) -> tuple[list[int], float]:
    """Run the original on letterbox()'s float blob and the wrapped graph on the uint8 blob of a
    seeded random frame in ONNX Runtime; returns (output shape, max abs difference)."""
    ort = require("onnxruntime", "cpu", "checking a Triton detector repository")
    from engines.detection.postprocess import letterbox, letterbox_uint8

    img = np.random.default_rng(0).integers(0, 256, (size * 3 // 4, size, 3), dtype=np.uint8)
    u8, _ = letterbox_uint8(img, (size, size))
    f32, _ = letterbox(img, (size, size))
    a = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    want_dtype = np.float16 if a.get_inputs()[0].type == "tensor(float16)" else np.float32
    ref = np.asarray(a.run(None, {src_input: f32.astype(want_dtype)})[0], np.float32)
    got = ort.InferenceSession(str(wrapped), providers=["CPUExecutionProvider"]).run(
        ["output0"], {"images": u8})[0]
    return list(got.shape), float(np.max(np.abs(ref - got))) if ref.size else 0.0


def write_detector_repository(out: str | Path, onnx_path: str | Path,
                              backends: tuple[str, ...] = ("tensorrt", "onnxruntime"),
                              max_batch: int = 8, preferred: tuple[int, ...] = (2, 4, 8),
                              queue_delay_us: int = 0, instances: int = 1, kind: str = "KIND_GPU",
                              python_threads: int = 1) -> dict[str, Path]:
    """Write the detector models; returns {model name: its config.pbtxt}."""
    out, src = Path(out), Path(onnx_path)
    if not src.is_file():
        raise EngineError(f"detector ONNX '{src}' not found; pass your exported .onnx with --onnx")
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise EngineError(f"unknown backend(s) {bad}; use {', '.join(BACKENDS)}")
    tmp = out / ".yolo_uint8.onnx"
    info = uint8_detector_onnx(src, tmp)
    size = info["size"]
    out_shape, diff = check_parity(src, tmp, size, info["src_input"])
    if not diff <= PARITY_ATOL:
        raise EngineError(f"the uint8 detector graph differs from '{src}' by {diff:.2e}; do not serve it")
    mb = max_batch if info["batched"] else 0
    in_dims = (3, size, size) if mb else (1, 3, size, size)
    out_dims = tuple(out_shape[1:]) if mb else tuple(out_shape)  # non-batch axes are fixed by S
    written: dict[str, Path] = {}
    for b in backends:
        name = MODEL_NAMES[b]
        mdir = out / name
        params = None
        (mdir / "1").mkdir(parents=True, exist_ok=True)
        if b == "tensorrt":
            shutil.copy(tmp, mdir / "model.onnx")
            script = mdir / "build_plan.sh"
            script.write_text(build_plan_script(mb, max(preferred, default=1) if mb else 1,
                                                (("images", (3, size, size)),)))
            script.chmod(0o755)
        else:
            shutil.copy(tmp, mdir / "1" / "model.onnx")
        if b == "python":
            shutil.copy(Path(__file__).with_name("triton_python_model.py"), mdir / "1" / "model.py")
            params = {"code_path": python_code_path(), "threads": str(python_threads)}
        written[name] = write_config(mdir, model_config(
            name, b, mb, preferred, queue_delay_us, kind, instances, parameters=params,
            inputs=(("images", "TYPE_UINT8", in_dims),), outputs=(("output0", out_dims),)))
    tmp.unlink(missing_ok=True)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engines.detection.triton_repo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="your YOLOv8/YOLO11-style export")
    ap.add_argument("--out", required=True, help="model repository folder (may hold SKEL-CF too)")
    ap.add_argument("--backends", default="tensorrt,onnxruntime",
                    help="comma list of tensorrt, onnxruntime, python")
    ap.add_argument("--max-batch", type=int, default=8, help="frames per execution (dynamic-batch exports)")
    ap.add_argument("--preferred-batch", default="2,4,8")
    ap.add_argument("--max-queue-delay-us", type=int, default=0)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--cpu", action="store_true", help="KIND_CPU instance groups (no GPU server)")
    ap.add_argument("--python-threads", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        written = write_detector_repository(
            a.out, a.onnx, tuple(x for x in a.backends.split(",") if x), a.max_batch,
            tuple(int(x) for x in a.preferred_batch.split(",") if x), a.max_queue_delay_us,
            a.instances, "KIND_CPU" if a.cpu else "KIND_GPU", a.python_threads)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_written(written, a.out, "yolo_trt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
