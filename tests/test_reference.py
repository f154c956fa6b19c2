"""The oracle chain: mpmath (definitions, 60 digits) -> numpy_reference (float64 closed form) -> everything else."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import approx_fprime

from focalbench.arena.checks import accuracy_errors
from focalbench.arena.core import loss_and_grad
from focalbench.arena.oracle import focal_row, numerical_gradient
from focalbench.arena.registry import get_implementation
from focalbench.implementations.numpy_reference import reference_rows

# rows as (logits, target): ordinary, confident (p_t -> 1), hopeless (p_t -> 0), shifted, gaps up to 1e20
ROWS = [
    ([0.3, -1.2, 2.0, 0.7], 2),
    ([0.3, -1.2, 2.0, 0.7], 1),
    ([25.0, 0.0, -1.0], 0),
    ([40.0, 0.5, 0.0, -3.0], 0),
    ([300.0, 0.0, 1.0], 0),
    ([1e20, 0.0, 1.0], 0),
    ([1e20, 0.0, 1.0], 1),
    ([1000.0, 1030.0, 999.5], 1),
    ([-3000.0, -3003.0, -2970.0], 2),
    ([-3000.0, -3003.0, -2970.0], 0),
    ([0.0, 0.0], 0),
]
GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0]


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize(("row", "target"), ROWS, ids=[f"row{i}" for i in range(len(ROWS))])
def test_reference_matches_arbitrary_precision(row, target, gamma):
    alpha = 0.7
    loss, grad = reference_rows(np.array([row]), np.array([target]), np.array([alpha]), gamma)
    exact_loss, exact_grad = focal_row(row, target, gamma, alpha)
    loss_err, grad_err = accuracy_errors(
        torch.tensor(loss),
        torch.tensor(grad),
        torch.tensor([exact_loss], dtype=torch.float64),
        torch.tensor([exact_grad], dtype=torch.float64),
        torch.float64,
    )
    assert loss_err <= 1e-13, (loss[0], exact_loss)
    assert grad_err <= 1e-13, (grad[0].tolist(), exact_grad)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(("row", "target"), [ROWS[0], ROWS[1], ROWS[2], ROWS[10]], ids=["r0", "r1", "r2", "r10"])
def test_oracle_closed_form_gradient_matches_numerical_differentiation(row, target, gamma):
    closed = focal_row(row, target, gamma, 1.3)[1]
    numeric = numerical_gradient(row, target, gamma, 1.3)
    np.testing.assert_allclose(closed, numeric, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_reference_gradient_matches_finite_differences(gamma):
    rng = np.random.default_rng(7)
    z = rng.normal(scale=2.0, size=(6, 5))
    t = rng.integers(0, 5, size=6)
    alpha_t = rng.uniform(0.1, 2.0, size=6)

    def total_loss(flat):
        return reference_rows(flat.reshape(6, 5), t, alpha_t, gamma)[0].sum()

    numeric = approx_fprime(z.ravel(), total_loss, 1e-7)
    closed = reference_rows(z, t, alpha_t, gamma)[1].ravel()
    np.testing.assert_allclose(closed, numeric, rtol=1e-5, atol=1e-6)


def test_reference_dense_layout_matches_per_row_computation():
    """Dense (N, C, H, W) goes through the same rows as its (N*H*W, C) flattening."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 4, 3, 5, generator=g, dtype=torch.float64)
    target = torch.randint(0, 4, (2, 3, 5), generator=g)
    ref = get_implementation("numpy_reference")
    loss, grad = loss_and_grad(ref, logits, target, {"gamma": 2.0, "reduction": "none"})
    flat_logits = logits.movedim(1, -1).reshape(-1, 4)
    flat_loss, flat_grad = loss_and_grad(ref, flat_logits, target.reshape(-1), {"gamma": 2.0, "reduction": "none"})
    torch.testing.assert_close(loss.reshape(-1), flat_loss, rtol=0, atol=0)
    torch.testing.assert_close(grad.movedim(1, -1).reshape(-1, 4), flat_grad, rtol=0, atol=0)
