"""ONNX model files as TensorRT consumes them: external data, a content digest, the FP16 graph.

Why this module: a model over protobuf's 2 GB (ViT-H, ~2.5 GB FP32) keeps its weights in external
data files that are resolved relative to the .onnx path, so every consumer must be handed the path,
and a cache key must hash those files too (the graph bytes alone are identical across checkpoints).
Each model here keeps all its weights in ONE file named after the model (`<model>.onnx.data`), so
two exports in one folder never overwrite each other's tensors (torch writes one file per tensor,
named after the tensor).

FP16 on TensorRT 11 (where weakly typed precision flags are gone) and on 10.12+ is an FP16 *graph*
built strongly typed: engines/backends/fp16_autocast.py makes it (`fp16_path` says where it lives).
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from stream.errors import EngineError, require

log = logging.getLogger(__name__)

PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1


def data_file_name(onnx_path: str | Path) -> str:
    """Name of the one external data file of a model: `<model file name>.data`."""
    return Path(onnx_path).name + ".data"


def external_data_files(onnx_path: str | Path) -> list[Path]:
    """Every external data file the model references (sorted, existing or not), read from the graph
    alone (weights are not loaded)."""
    onnx = require("onnx", "skelcf", "reading an ONNX model")
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    model = onnx.load(str(onnx_path), load_external_data=False)
    base = Path(onnx_path).parent
    locations = set()
    for tensor in _get_all_tensors(model):
        if uses_external_data(tensor):
            locations.update(e.value for e in tensor.external_data if e.key == "location")
    return sorted(base / loc for loc in locations)


def model_files(onnx_path: str | Path) -> list[Path]:
    """The .onnx file and its external data files; EngineError naming the first one missing."""
    onnx_path = Path(onnx_path)
    files = [onnx_path, *external_data_files(onnx_path)]
    for f in files:
        if not f.is_file():
            raise EngineError(f"ONNX model file {f} is missing (the model {onnx_path} needs it); "
                              f"re-export the model into its own folder")
    return files


def model_digest(onnx_path: str | Path) -> str:
    """sha256 over the graph AND its weights (external data included), so two checkpoints of one
    architecture never share an engine."""
    h = hashlib.sha256()
    for f in model_files(onnx_path):
        h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | Path, data: bytes | memoryview) -> None:
    """Write `data` to a unique temp file beside `path`, then rename it over `path`: a killed
    writer never leaves half a file, and two writers never share a temp name."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; caches are shared like any other output
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model, out_path: str | Path, external: bool | None = None) -> Path:
    """Save a ModelProto to `out_path`; with external data (one file, `data_file_name`) when
    `external` or when the model would not fit protobuf's 2 GB. Written under temp names in the
    target folder and renamed into place, data file first. Like onnx.save_model, it turns the
    tensors of `model` into references to the data file (no copy of a multi-GB model is made)."""
    onnx = require("onnx", "skelcf", "saving an ONNX model")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if external is None:
        external = _byte_size(model) > PROTOBUF_LIMIT_BYTES
    tmp_dir = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.name}."))
    try:
        tmp_model = tmp_dir / out_path.name
        if external:
            onnx.save_model(model, str(tmp_model), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data_file_name(out_path),
                            size_threshold=1024)
            os.chmod(tmp_dir / data_file_name(out_path), 0o644)
            os.replace(tmp_dir / data_file_name(out_path), out_path.parent / data_file_name(out_path))
        else:
            onnx.save_model(model, str(tmp_model))
            (out_path.parent / data_file_name(out_path)).unlink(missing_ok=True)
        os.replace(tmp_model, out_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return out_path


def _byte_size(model) -> int:
    try:
        return model.ByteSize()
    except Exception:  # protobuf refuses to size a message over 2 GB
        return PROTOBUF_LIMIT_BYTES + 1


def consolidate_external_data(onnx_path: str | Path) -> Path:
    """Rewrite a model whose weights are spread over per-tensor files (torch's exporter) so they
    live in one `<model>.onnx.data` file, and delete the per-tensor files."""
    onnx = require("onnx", "skelcf", "rewriting an ONNX model")
    onnx_path = Path(onnx_path)
    old = [f for f in external_data_files(onnx_path) if f.name != data_file_name(onnx_path)]
    if not old:
        return onnx_path
    model = onnx.load(str(onnx_path), load_external_data=True)
    save_model(model, onnx_path, external=True)
    del model
    for f in old:
        f.unlink(missing_ok=True)
    return onnx_path


def fp16_path(onnx_path: str | Path) -> Path:
    """Where the FP16 AutoCast graph of a model lives: beside it, `<stem>.fp16.onnx`."""
    p = Path(onnx_path)
    return p.with_name(f"{p.stem}.fp16.onnx")
