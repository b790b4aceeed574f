"""The FP16 graph TensorRT builds strongly typed, made by NVIDIA ModelOpt AutoCast with bounded memory.

Why not call `convert_to_mixed_precision` directly: on a model over 2 GB (ViT-H, 2.7 GB FP32) it
holds several full copies of the weights at once (its loaded model, the PrecisionConverter's
deepcopy, the deepcopy `check_model` saves to a temp file, the reference run's deepcopy, ONNX
Runtime's own copy plus prepacked weights, every intermediate tensor as a graph output), and
protobuf's default (upb) encoder needs ~4x a message's size transiently for every `ByteSize` and
serialization, which AutoCast calls many times (on a 2.7 GB model `ByteSize` alone passed 9 GB).
It passed 21.5 GB on ViT-H. `convert_fp16` runs the same AutoCast steps with the same classes and
arguments, in an order that keeps one copy of the weights at a time:

1. sanitize and type the graph WITHOUT its weights (as AutoCast does: it loads them afterwards);
2. AutoCast's ReferenceRunner runs that graph in ONNX Runtime, which reads the weights from the
   model's own data file (nothing serialized again; memory arena and weight prepacking off, which
   change no result); only the per-tensor statistics AutoCast reads are kept;
3. the PrecisionConverter copies the weightless graph, the weights are loaded into its copy only,
   then NodeClassifier and `convert` run as in AutoCast.

A model with external data (the >2 GB ones) is converted in a child process that uses protobuf's
pure-Python implementation (copies share the weight bytes, sizes are computed without encoding):
slower, but ViT-H peaks at the figure in BENCHMARKS.md instead of >21 GB, and the parent process
(a pipeline stage building its engine) never grows.

The result is the graph `convert_to_mixed_precision(path, "fp16", keep_io_types=True,
data_max=AUTOCAST_DATA_MAX, providers=["cpu"])` returns, byte for byte: tests/test_fp16_autocast.py
compares both on the tiny variant (embedded weights in process, external weights in the child).

    python -m engines.backends.fp16_autocast MODEL.onnx OUT.fp16.onnx
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path

from engines.backends.onnx_files import external_data_files, fp16_path, model_files, save_model
from stream.errors import DependencyError, EngineError, require

# data_max of AutoCast: activations beyond this stay FP32 (FP16 overflows at 65504; 512 leaves room
# for the products inside a node). ModelOpt's own default, named here because parity depends on it.
AUTOCAST_DATA_MAX = 512.0
LOW_PRECISION = "fp16"
PROVIDERS = ("cpu",)
PROJECT_ROOT = Path(__file__).resolve().parents[2]

log = logging.getLogger(__name__)


def _modelopt():
    try:
        from modelopt.onnx.autocast import convert as mo_convert
        from modelopt.onnx.autocast import referencerunner, utils
        from modelopt.onnx.autocast.graphsanitizer import GraphSanitizer
        from modelopt.onnx.autocast.nodeclassifier import NodeClassifier
        from modelopt.onnx.autocast.precisionconverter import PrecisionConverter
    except ImportError as exc:
        raise DependencyError(f"the FP16 TensorRT graph needs NVIDIA ModelOpt AutoCast ({exc}); "
                              f"install it with: pip install -e '.[fp16onnx]'") from None
    return mo_convert, referencerunner, utils, GraphSanitizer, NodeClassifier, PrecisionConverter


@contextmanager
def _quiet_modelopt():
    """AutoCast logs one INFO line per node kept in FP32 and WARNINGs about routine steps (shared
    constants duplicated, tiny weights rounded); only errors pass. Its logger sets its own level on
    import, so this is entered after the import."""
    logs = [logging.getLogger(n) for n in ("modelopt.onnx", "modelopt.onnx.autocast")]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _lean_session_options():
    """Polygraphy's thread settings (AutoCast's own session), without the memory arena and weight
    prepacking: both only change where memory comes from, not what a kernel computes."""
    ort = require("onnxruntime", "skelcf", "AutoCast's reference run")
    opts = ort.SessionOptions()
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = 1
    opts.intra_op_num_threads = n
    opts.inter_op_num_threads = n
    opts.enable_cpu_mem_arena = False
    opts.add_session_config_entry("session.disable_prepacking", "1")
    opts.log_severity_level = 3
    return opts


def _reference_runner_class(referencerunner):
    class WeightsFromFileRunner(referencerunner.ReferenceRunner):
        """AutoCast's ReferenceRunner (same inputs, same statistics) on a graph whose weights stay in
        the model's data file: the graph with every tensor marked as an output is written beside
        that file under a temp name, so ONNX Runtime resolves the weights itself. A model without
        external data goes to ONNX Runtime as bytes (its folder may be read-only), as in AutoCast."""

        def __init__(self, model, model_dir: Path, providers: list[str]):
            super().__init__(model, providers)
            self.model_dir = model_dir

        def _get_ort_runner(self, model):
            import onnx
            import onnxruntime as ort
            from polygraphy.backend.onnxrt import OnnxrtRunner

            from modelopt.onnx.utils import check_model_uses_external_data

            graph = model()
            if not check_model_uses_external_data(graph):
                sess = ort.InferenceSession(graph.SerializeToString(), _lean_session_options(),
                                            providers=self.providers)
                return [OnnxrtRunner(sess)], None
            graph.ir_version = min(graph.ir_version, 10)  # as AutoCast's save_onnx (ORT's limit)
            fd, tmp = tempfile.mkstemp(dir=self.model_dir, prefix=".autocast-reference.", suffix=".onnx")
            os.close(fd)
            try:
                onnx.save_model(graph, tmp)
                sess = ort.InferenceSession(tmp, _lean_session_options(), providers=self.providers)
            finally:
                Path(tmp).unlink(missing_ok=True)  # the session has read it
            return [OnnxrtRunner(sess)], None

    return WeightsFromFileRunner


def _statistics(reference: dict, TensorStats) -> dict:
    """Each reference tensor as AutoCast's TensorStats (absmax, min, max, shape): the numbers its
    IORangeRule reads from a raw array, without keeping the arrays (~2 GB on ViT-H)."""
    import numpy as np
    stats = {}
    for name in list(reference):
        a = np.asarray(reference.pop(name))
        stats[name] = (TensorStats(np.max(np.abs(a)), np.min(a), np.max(a), a.shape) if a.size
                       else TensorStats(0, 0, 0, a.shape))
    return stats


def convert_fp16(onnx_path: str | Path, data_max: float = AUTOCAST_DATA_MAX):
    """AutoCast's `convert_to_mixed_precision(onnx_path, "fp16", keep_io_types=True, data_max=...,
    providers=["cpu"])`, step for step, holding one copy of the weights at a time (see the module
    docstring). Returns the FP16 ModelProto (weights loaded)."""
    import onnx
    mo_convert, referencerunner, utils, GraphSanitizer, NodeClassifier, PrecisionConverter = _modelopt()
    from modelopt.onnx import utils as onnx_utils

    onnx_path = Path(onnx_path).resolve()
    model = onnx.load(str(onnx_path), load_external_data=False)  # AutoCast too: weights come later
    io_metadata = {"input": [deepcopy(v) for v in model.graph.input],
                   "output": [deepcopy(v) for v in model.graph.output]}  # keep_io_types
    # 13: the minimum opset AutoCast uses for fp16 when no opset is given
    sanitizer = GraphSanitizer(model, 13, trt_plugins=[], trt_plugins_precision=[],
                               max_ir_version=mo_convert.LATEST_IR_VERSION_SUPPORTED_BY_ORT,
                               onnx_path=str(onnx_path))
    sanitizer.sanitize()
    if sanitizer.custom_ops:
        raise EngineError(f"{onnx_path} has custom ops {sorted(sanitizer.custom_ops)}; the FP16 graph "
                          f"is made for standard ONNX ops only (re-export without plugins)")
    model = onnx_utils.infer_types(sanitizer.model, False, strict_mode=True)

    runner = _reference_runner_class(referencerunner)(model, onnx_path.parent, list(PROVIDERS))
    reference = _statistics(runner.run(None), referencerunner.TensorStats)  # AutoCast's random inputs

    converter = PrecisionConverter(model, *utils.setup_mappings(model), keep_io_types=True,
                                   low_precision_type=LOW_PRECISION, init_conversion_max_bytes=None,
                                   custom_ops=sanitizer.custom_ops, use_standalone_type_inference=False,
                                   original_network_io_metadata=io_metadata, sanitize_model=False)
    del model, sanitizer, runner  # the converter holds its own copy of the (weightless) graph
    onnx.external_data_helper.load_external_data_for_model(converter.model, str(onnx_path.parent))
    _, initializer_map, node_to_init_map = utils.setup_mappings(converter.model)
    classifier = NodeClassifier(converter.model, node_to_init_map, initializer_map,
                                data_max=data_max, init_max=mo_convert.DEFAULT_INIT_MAX)
    low, high = classifier.run(reference)
    del reference, classifier, initializer_map, node_to_init_map
    return converter.convert(high, low)


def autocast_fp16(onnx_path: str | Path, out_path: str | Path | None = None) -> Path:
    """FP16 mixed-precision copy of an FP32 ONNX model (`<stem>.fp16.onnx` beside it unless
    `out_path`), for a strongly typed TensorRT build: nodes whose reference activations exceed
    `AUTOCAST_DATA_MAX` stay FP32, graph inputs/outputs stay FP32. Reuses an existing output that
    is newer than the source. Peak memory ~4x the FP32 weights (ViT-H: 9.45 GiB, BENCHMARKS.md)."""
    onnx_path = Path(onnx_path)
    out = Path(out_path) if out_path is not None else fp16_path(onnx_path)
    if out.is_file() and out.stat().st_mtime >= onnx_path.stat().st_mtime:
        try:
            model_files(out)
            return out
        except EngineError:
            pass  # a data file went missing: convert again
    if external_data_files(onnx_path):
        return _convert_in_child(onnx_path, out)
    _modelopt()
    with _quiet_modelopt():
        model = convert_fp16(onnx_path)
    return save_model(model, out)


def _convert_in_child(onnx_path: Path, out: Path) -> Path:
    """`python -m engines.backends.fp16_autocast` with protobuf's pure-Python implementation (see
    the module docstring); EngineError with the child's last error line when it fails."""
    _modelopt()  # a missing extra is reported here, as one line
    log.info("FP16 AutoCast of %s in a child process: minutes, and RAM ~4x the weights (ViT-H: "
             "12-26 min, 9.45 GiB on 2 shared cores); done once, the result is cached", onnx_path)
    # PYTHONHASHSEED: AutoCast inserts some casts in set order; a fixed seed gives the same file
    # (hence the same engine cache key) on every conversion
    env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python", PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "engines.backends.fp16_autocast", str(onnx_path), str(out)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise EngineError(f"FP16 AutoCast of {onnx_path} failed (exit {proc.returncode}): "
                          f"{lines[-1] if lines else 'no output'}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Convert one model (weights in external data when the source has them)."""
    src, out = (argv if argv is not None else sys.argv[1:])[:2]
    _modelopt()
    with _quiet_modelopt():
        model = convert_fp16(src)
    save_model(model, out, external=bool(external_data_files(src)) or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
