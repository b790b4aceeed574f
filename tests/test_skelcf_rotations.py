"""6D <-> SKEL Euler conversions against HSMR's golden vectors, plus properties the export relies on."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engines.skelcf.decoder import MEAN_Q
from engines.skelcf.rotations import (
    DOF3_GROUPS, euler_to_matrix, matrix_to_euler, q_to_rep, rep_to_q, sixd_to_matrix,
)
from conftest import GOLDEN, needs_shared

ROT = GOLDEN / "rotation_conversions.npz"


@pytest.fixture(scope="module")
def golden():
    return dict(np.load(ROT))


@needs_shared(ROT)
def test_rep_to_q_matches_golden_float64(golden):
    q = rep_to_q(torch.from_numpy(golden["rep_in"]).reshape(-1, 144)).numpy()
    np.testing.assert_allclose(q, golden["q_from_rep"], rtol=0, atol=1e-9)


@needs_shared(ROT)
def test_q_to_rep_and_roundtrip_match_golden_float64(golden):
    rep = q_to_rep(torch.from_numpy(golden["q_in"]))
    np.testing.assert_allclose(rep.numpy(), golden["rep_from_q"].reshape(-1, 144), rtol=0, atol=1e-9)
    np.testing.assert_allclose(rep_to_q(rep).numpy(), golden["q_roundtrip"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(rep_to_q(rep).numpy(), golden["q_in"], rtol=0, atol=1e-9)


@needs_shared(ROT)
def test_float32_stays_within_documented_error(golden):
    q = rep_to_q(torch.from_numpy(golden["rep_in"]).float().reshape(-1, 144)).double().numpy()
    assert np.abs(q - golden["q_from_rep"]).max() < 1.3e-5  # the official code in float32: 1.3e-5


@needs_shared(GOLDEN / "skelcf_small.pth")
def test_mean_init_buffer_equals_official():
    """The hard-coded SKEL_mean numbers, converted by q_to_rep, equal the official buffer."""
    sd = torch.load(GOLDEN / "skelcf_small.pth", weights_only=True)["ema_model"]
    ours = q_to_rep(torch.tensor(MEAN_Q, dtype=torch.float64)[None]).float()
    assert torch.allclose(ours, sd["model.decoder.mean_poses"], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(sorted(DOF3_GROUPS)))
def test_euler_matrix_inverse(seed: int, conv: str):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(16, 3, generator=g, dtype=torch.float64) - 0.5) * 2 * torch.tensor([3.1, 1.5, 3.1])
    m = euler_to_matrix(a, conv)
    assert torch.allclose(m @ m.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(16, 3, 3), atol=1e-12)
    assert torch.allclose(matrix_to_euler(m, conv), a, atol=1e-9)


def test_sixd_is_first_two_rows_and_scale_free():
    g = torch.Generator().manual_seed(3)
    d6 = torch.randn(32, 6, generator=g, dtype=torch.float64)
    m = sixd_to_matrix(d6)
    assert torch.allclose(torch.linalg.det(m), torch.ones(32, dtype=torch.float64))
    assert torch.allclose(sixd_to_matrix(d6 * 3.7), m)
    assert torch.allclose(m[:, 0], d6[:, :3] / d6[:, :3].norm(dim=-1, keepdim=True))


def test_no_nan_for_near_gimbal_float32():
    """asin input clamped: an orthonormal float32 matrix a hair past +-1 must not give NaN."""
    a = torch.tensor([[0.3, np.pi / 2, -0.2]], dtype=torch.float32)
    for conv in DOF3_GROUPS:
        e = matrix_to_euler(euler_to_matrix(a, conv) * (1 + 1e-7), conv)
        assert torch.isfinite(e).all()
