"""The bounded-memory AutoCast (engines/backends/fp16_autocast.py) returns exactly the graph ModelOpt's
own `convert_to_mixed_precision` returns, on the tiny variant: byte for byte with its weights embedded
(in process); with them in an external data file (the child process on protobuf's pure-Python
implementation, the path ViT-H takes) the same nodes, initializers, value infos and I/O, where the
order AutoCast inserts its input casts follows Python's string hashing (a set), which differs between
processes. 52 s on 2 quiet cores, ~6 min when they are shared."""
from __future__ import annotations

import logging

import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("modelopt.onnx.autocast", reason="nvidia-modelopt AutoCast not installed (.[test])")

from modelopt.onnx.autocast import convert_to_mixed_precision  # noqa: E402

from engines.backends.fp16_autocast import AUTOCAST_DATA_MAX, autocast_fp16, convert_fp16  # noqa: E402
from engines.backends.onnx_files import data_file_name, external_data_files, save_model  # noqa: E402
from engines.skelcf.export import export_skelcf  # noqa: E402
from engines.skelcf.model import build_skelcf  # noqa: E402

pytestmark = pytest.mark.slow


def modelopt_autocast(path, data_max):
    """What the issue names: ModelOpt AutoCast's one call, unmodified."""
    logging.getLogger("modelopt.onnx.autocast").setLevel(logging.WARNING)
    return convert_to_mixed_precision(onnx_path=str(path), low_precision_type="fp16", keep_io_types=True,
                                      data_max=data_max, providers=["cpu"])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("autocast") / "tiny.onnx"
    export_skelcf(build_skelcf("tiny").eval(), path, check=False)
    return path


def canonical(model) -> tuple:
    """The model with node and initializer order left out (both orders are valid graphs)."""
    g = model.graph
    key = lambda items: sorted(x.SerializeToString() for x in items)  # noqa: E731
    return (model.ir_version, [(o.domain, o.version) for o in model.opset_import], key(g.node),
            key(g.initializer), key(g.value_info), key(g.input), key(g.output))


def fp32_nodes(model) -> int:
    """Casts AutoCast inserted back to FP32 (around nodes it kept in FP32)."""
    return sum(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT for n in model.graph.node)


@pytest.mark.timeout(600)
def test_same_graph_as_modelopt_with_many_nodes_kept_fp32(tiny):
    # data_max 2 keeps a large share of nodes in FP32 through the reference run's statistics, the
    # part this module runs differently (ONNX Runtime reading the weights from the file)
    ours, theirs = convert_fp16(tiny, data_max=2.0), modelopt_autocast(tiny, 2.0)
    assert fp32_nodes(theirs) > 50
    assert ours.SerializeToString() == theirs.SerializeToString()


@pytest.mark.timeout(600)
def test_external_weights_convert_in_a_child_to_the_same_graph(tiny, tmp_path):
    src = tmp_path / "tiny_ext.onnx"
    save_model(onnx.load(str(tiny)), src, external=True)
    assert external_data_files(src) == [tmp_path / data_file_name(src)]
    out = autocast_fp16(src, tmp_path / "out" / "tiny_ext.fp16.onnx")
    assert external_data_files(out) == [out.parent / data_file_name(out)]  # weights stay external
    ours = onnx.load(str(out))  # loads the data file
    onnx.checker.check_model(ours)  # among others: nodes in topological order
    # through the same file round trip (loading external data marks each tensor's data_location)
    theirs = save_model(modelopt_autocast(src, AUTOCAST_DATA_MAX), tmp_path / "theirs" / "t.onnx", external=True)
    theirs = onnx.load(str(theirs))
    assert canonical(ours) == canonical(theirs)
    assert len(ours.graph.node) == len(theirs.graph.node)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", "theirs", src.name, data_file_name(src)])
