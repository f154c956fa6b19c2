"""The accuracy claim against the arbitrary-precision oracle, for every implementation that declares no defect.

Default run: every gap of the sweep (0 to 1e20), shifts 0 / +1e3 / -3e3, every gamma, C in {2, 20}. The class count
of 1000 (slower oracle) is behind ``-m slow``.
"""

from __future__ import annotations

import pytest
import torch

from focalbench.arena.accuracy import sweep
from focalbench.arena.family import get_family
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND

REFERENCE = get_family("softmax").reference

CLAIMING = [
    name
    for name in list_implementations(family="softmax")
    if name != REFERENCE and get_implementation(name).known_defects == ()
]


def _assert_within_bound(name: str, dtype: torch.dtype, classes: tuple[int, ...], device: str) -> None:
    impl = get_implementation(name)
    reason = impl.supports(device=device, dtype=dtype)
    if reason:
        pytest.skip(reason)
    bound = ACCURACY_BOUND[dtype]
    rows = sweep([impl], "softmax", dtype=dtype, classes=classes, device=device)
    worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
    assert max(worst.max_loss_error, worst.max_grad_error) <= bound, worst


@pytest.mark.parametrize("name", CLAIMING)
def test_float32_within_bound_at_every_gap(name, device):
    _assert_within_bound(name, torch.float32, (2, 20), device)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("name", CLAIMING)
def test_within_bound_with_a_thousand_classes(name, dtype, device):
    _assert_within_bound(name, dtype, (2, 20, 1000), device)


def test_the_sweep_exposes_the_naive_implementation():
    rows = sweep([get_implementation("gather")], "softmax", classes=(2,), values=(30.0,), shifts=(0.0,), gammas=(0.0,))
    assert rows[0].max_loss_error == pytest.approx(1.0)  # confident row: loss 0 instead of ~4e-14
