"""The sigmoid family's oracle chain and accuracy claim: mpmath (definitions, 60 digits) -> sigmoid_reference (float64
closed form) -> every implementation that declares no known defect, within 2e-6 (float32) of the oracle at every
logit magnitude of the sweep (0 to 1e20), every loss and gradient element; the C kernel's own properties.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import approx_fprime

from focalbench.arena.accuracy import sweep as accuracy_sweep
from focalbench.arena.family import get_family
from focalbench.arena.oracle import sigmoid_focal_element, sigmoid_numerical_gradient
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations.sigmoid_reference import reference_elements

# (logit, target): ordinary, confident (p_t -> 1) and hopeless (p_t -> 0) of both signs, soft, up to 1e20
ELEMENTS = [
    (0.3, 1.0), (0.3, 0.0), (-2.0, 1.0), (17.0, 1.0), (-17.0, 0.0), (40.0, 1.0), (-40.0, 1.0), (300.0, 0.0),
    (1e20, 1.0), (1e20, 0.0), (-1e20, 1.0), (0.7, 0.3), (-5.0, 0.999), (25.0, 1e-30), (0.0, 0.5),
]  # fmt: skip
GAMMAS = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0]


def _relative(value: float, exact: float) -> float:
    return 0.0 if value == exact else abs(value - exact) / abs(exact)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_reference_matches_arbitrary_precision(gamma, alpha):
    x = np.array([e[0] for e in ELEMENTS])
    t = np.array([e[1] for e in ELEMENTS])
    loss, grad = reference_elements(x, t, alpha, gamma)
    for i, (xi, ti) in enumerate(ELEMENTS):
        exact_loss, exact_grad = sigmoid_focal_element(xi, ti, gamma, alpha)
        assert _relative(loss[i], exact_loss) <= 1e-13, (xi, ti, loss[i], exact_loss)
        assert _relative(grad[i], exact_grad) <= 1e-13, (xi, ti, grad[i], exact_grad)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(("x", "t"), [(0.3, 1.0), (-2.0, 0.0), (3.0, 0.3), (-17.0, 0.0)])
def test_oracle_chain_rule_matches_numerical_differentiation(x, t, gamma):
    closed = sigmoid_focal_element(x, t, gamma, 0.25)[1]
    assert _relative(closed, sigmoid_numerical_gradient(x, t, gamma, 0.25)) <= 1e-12


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_reference_gradient_matches_finite_differences(gamma):
    rng = np.random.default_rng(7)
    x, t = rng.normal(scale=2.0, size=12), rng.uniform(size=12)

    def total(flat):
        return reference_elements(flat, t, 0.25, gamma)[0].sum()

    np.testing.assert_allclose(reference_elements(x, t, 0.25, gamma)[1], approx_fprime(x, total, 1e-7), rtol=1e-5,
                               atol=1e-6)  # fmt: skip


CLAIMING = [
    name
    for name in list_implementations(family="sigmoid")
    if name != get_family("sigmoid").reference and get_implementation(name).known_defects == ()
]


def _assert_within_bound(name: str, dtype: torch.dtype, device: str, **sweep) -> None:
    impl = get_implementation(name)
    reason = impl.supports(device=device, dtype=dtype)
    if reason:
        pytest.skip(reason)
    rows = accuracy_sweep([impl], "sigmoid", dtype=dtype, device=device, **sweep)
    worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
    assert max(worst.max_loss_error, worst.max_grad_error) <= ACCURACY_BOUND[dtype], worst


@pytest.mark.parametrize("name", CLAIMING)
def test_float32_within_bound_at_every_logit(name, device):
    """Every magnitude of the sweep (0 to 1e20), both signs, targets 0 and 1, gammas 0 to 5, alpha 0.25 and none."""
    _assert_within_bound(name, torch.float32, device)


@pytest.mark.slow
@pytest.mark.parametrize("name", CLAIMING)
def test_float64_within_bound_at_every_logit(name, device):
    _assert_within_bound(name, torch.float64, device)


def test_the_sweep_exposes_torchvision():
    rows = accuracy_sweep([get_implementation("sigmoid_torchvision")], "sigmoid", values=(30.0,), gammas=(1.0,),
                          alphas=(-1,))
    assert rows[0].max_loss_error == pytest.approx(1.0)  # a confident element's loss: 0 instead of ~9e-14 * 9e-14
