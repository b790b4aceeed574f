"""ONNX export of SKEL-CF: one graph, dynamic batch, TensorRT-buildable ops, ORT parity."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from engines.skelcf.export import (FORBIDDEN_OPS, INPUT_NAMES, OUTPUT_NAMES, TENSORRT_OPS,  # noqa: E402
                                   check_parity, check_tensorrt_ops, dynamic_axes, export_flnet, graph_ops,
                                   export_skelcf, main)
from engines.skelcf.model import build_skelcf  # noqa: E402
from stream.errors import EngineError  # noqa: E402


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    torch.manual_seed(0)
    net = build_skelcf("tiny").eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return net, path, export_skelcf(net, path)


def test_graph_io_names_and_dynamic_batch(tiny_export):
    _, path, res = tiny_export
    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    assert [i.name for i in m.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in m.graph.output] == list(OUTPUT_NAMES)
    assert m.opset_import[0].version >= 17
    for v in (*m.graph.input, *m.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch"
    dims = {o.name: o.type.tensor_type.shape.dim[1].dim_value for o in m.graph.output}
    assert dims == {"q": 46, "betas": 10, "cam": 3}
    assert dynamic_axes(("a",), ("b",)) == {"a": {0: "batch"}, "b": {0: "batch"}}


def test_ops_are_tensorrt_buildable(tiny_export):
    _, path, res = tiny_export
    ops = set(res["ops"])
    assert check_tensorrt_ops(path) == ops
    assert ops <= TENSORRT_OPS and not ops & FORBIDDEN_OPS
    assert "LayerNormalization" in ops  # opset 17 keeps LayerNorm one op (TensorRT fuses it)


def test_onnxruntime_matches_pytorch(tiny_export):
    net, path, res = tiny_export
    assert res["max_abs_dq_rad"] <= 1e-4
    worst = check_parity(net, path, batches=(1, 7), seed=5)
    assert worst["max_abs_dq_rad"] <= 1e-4 and worst["max_abs_dcam"] <= 1e-4


def test_parity_check_can_fail(tiny_export, tmp_path):
    net, path, _ = tiny_export
    other = build_skelcf("tiny").eval()  # different random weights
    with pytest.raises(EngineError, match="differs from PyTorch"):
        check_parity(other, path, batches=(2,))


class _DataDependent(nn.Module):
    def forward(self, crops, bbox_info):
        idx = torch.nonzero(bbox_info[:, 2] > 0.5)  # data-dependent shape: TensorRT-hostile
        q = crops.mean((1, 2, 3))[:, None].expand(-1, 46) + idx.sum()
        return q, q[:, :10], q[:, :3]


def test_data_dependent_ops_are_rejected(tmp_path):
    with pytest.raises(EngineError, match="NonZero"):
        export_skelcf(_DataDependent(), tmp_path / "bad.onnx")
    with pytest.raises(EngineError, match="opset"):
        export_skelcf(_DataDependent(), tmp_path / "bad.onnx", opset=13)


@pytest.mark.slow
def test_flnet_exports_separately(tmp_path):
    from engines.skelcf.flnet import build_flnet
    torch.manual_seed(0)
    res = export_flnet(build_flnet(4), tmp_path / "flnet.onnx")
    assert res["max_abs_dout"] <= 1e-4 and set(res["ops"]) <= TENSORRT_OPS


def test_cli_exports_tiny(tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["--variant", "tiny", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "ORT parity" in text
    import onnxruntime as ort
    s = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    q, = s.run(["q"], {"crops": np.zeros((3, 3, 256, 256), np.float32),
                       "bbox_info": np.tile(np.float32([0, 0, 0.5]), (3, 1))})
    assert q.shape == (3, 46) and np.isfinite(q).all()


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    """Weights from a best.pth-layout file reach the graph: ORT reproduces the loaded network."""
    from engines.skelcf.checkpoint import load_skelcf, make_manifest_checkpoint
    ck = make_manifest_checkpoint("tiny", tmp_path / "best.pth", seed=11)
    out = tmp_path / "ck.onnx"
    assert main(["--variant", "tiny", "--checkpoint", str(ck), "--out", str(out)]) == 0
    net = build_skelcf("tiny").eval()
    load_skelcf(net, ck)
    assert check_parity(net, out, batches=(2,))["max_abs_dq_rad"] <= 1e-4
    assert main(["--variant", "tiny", "--checkpoint", str(tmp_path / "nope.pth"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_exports_the_checkpoints_flnet(tmp_path):
    from engines.skelcf.checkpoint import make_manifest_checkpoint
    ck = make_manifest_checkpoint("tiny", tmp_path / "best.pth", seed=12, flnet_width=2)
    fl_out = tmp_path / "fl.onnx"
    assert main(["--variant", "tiny", "--checkpoint", str(ck), "--out", str(tmp_path / "n.onnx"),
                 "--flnet-out", str(fl_out)]) == 0
    assert fl_out.is_file() and set(graph_ops(fl_out)) <= TENSORRT_OPS
