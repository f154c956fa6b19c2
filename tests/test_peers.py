"""The peers (kornia, MONAI, focal_loss_torch, smp): present when installed, unavailable with a reason when not.

Their checks run in ``tests/test_conformance.py`` like every registered implementation's; here: the suite without
them, the adapters' mapping onto each peer's own arguments, and the peers' convention differences and defects pinned
with the numbers the README quotes (each test skips when its peer is not installed).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import types

import pytest
import torch

import focalbench
from focalbench.arena.core import all_checks, evaluate
from focalbench.arena.registry import (
    get_implementation,
    list_implementations,
    load_implementation,
    unavailable_implementations,
)
from focalbench.cli import main

CHECKS = all_checks()

PEERS = {  # registered name: the modules whose absence makes it unavailable
    "kornia": ("kornia",),
    "monai": ("monai",),
    "focal_loss_torch": ("focal_loss",),
    "smp": ("segmentation_models_pytorch",),
    "sigmoid_kornia": ("kornia",),
    "sigmoid_monai": ("monai",),
    "sigmoid_smp": ("segmentation_models_pytorch",),
}


def _peer(name: str):
    if name not in list_implementations():
        pytest.skip(f"{name}: {unavailable_implementations().get(name, 'not registered')}")
    return get_implementation(name)


@pytest.mark.parametrize("name", PEERS)
def test_each_peer_is_registered_or_unavailable_with_a_reason(name):
    if name in list_implementations():
        impl = get_implementation(name)
        assert impl.extra.get("peer") and impl.extra.get("version")
        assert impl.known_defects, "every peer found so far has defects; a peer without any is news worth a look"
    else:
        assert "not installed" in unavailable_implementations()[name]


WITHOUT_PEERS = """
import json, sys
for module in {modules!r}:
    sys.modules[module] = None  # import raises ModuleNotFoundError; find_spec finds nothing
from focalbench.arena.registry import list_implementations, unavailable_implementations
print(json.dumps({{"registered": list_implementations(), "unavailable": unavailable_implementations()}}))
"""


def test_without_the_peers_they_are_listed_unavailable_and_the_rest_stays():
    modules = [m for names in PEERS.values() for m in names]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PEERS.format(modules=modules)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert not set(PEERS) & set(outcome["registered"])
    assert {"gather", "numpy_reference"} <= set(outcome["registered"])
    for name in PEERS:
        assert "is not installed (pip install" in outcome["unavailable"][name], outcome["unavailable"][name]


def test_list_shows_unavailable_peers_with_their_reason(capsys, monkeypatch):
    from focalbench.arena import registry

    monkeypatch.setitem(registry._UNAVAILABLE, "imaginary_peer", "imaginary is not installed (pip install x)")
    assert main(["list"]) == 0
    assert "imaginary_peer: unavailable here: imaginary is not installed (pip install x)" in capsys.readouterr().out


# --- the adapters map only what the peer means, and refuse the rest -------------------------------------------------


@pytest.mark.parametrize("name", ["kornia", "monai", "focal_loss_torch", "smp"])
def test_scalar_alpha_is_not_mapped(name):
    """No peer's scalar alpha means "every class times alpha": the adapters refuse it rather than translate."""
    impl = _peer(name)
    assert "alpha:scalar" not in impl.capabilities
    with pytest.raises(ValueError, match=rf"'{name}' does not support alpha:scalar"):
        impl(torch.zeros(3, 3), torch.tensor([0, 1, 2]), alpha=0.25)


def test_kornia_scalar_alpha_weights_class_0_by_one_minus_alpha():
    """The README's numbers: zero logits over 3 classes, targets 0, 1, 2, gamma 2, alpha 0.25."""
    _peer("kornia")
    from kornia.losses import focal_loss

    per_class = focal_loss(torch.zeros(3, 3), torch.tensor([0, 1, 2]), alpha=0.25, gamma=2.0, reduction="none")
    losses = per_class.sum(dim=1)
    expected = [weight * (2 / 3) ** 2 * math.log(3) for weight in (0.75, 0.25, 0.25)]  # alpha_t (1 - p_t)^2 (-log p_t)
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-6, atol=0)
    assert [round(v, 3) for v in losses.tolist()] == [0.366, 0.122, 0.122]


def test_kornia_mean_is_c_times_smaller_a_convention():
    impl = _peer("kornia")
    logits, target = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 3, 4, 0])
    ours = focalbench.get_implementation("gather")(logits, target, reduction="mean")
    torch.testing.assert_close(impl(logits, target, reduction="mean") * 5, ours)
    torch.testing.assert_close(impl(logits, target, reduction="sum"), ours * 6)


def test_monai_sum_is_a_mean_once_ignore_index_is_given():
    impl = _peer("monai")
    logits, target = torch.randn(6, 5, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 3, 4, 0])
    torch.testing.assert_close(impl(logits, target, reduction="sum"), impl(logits, target, reduction="mean"))
    ours = focalbench.get_implementation("gather")(logits, target, reduction="mean")
    torch.testing.assert_close(impl(logits, target, reduction="mean"), ours)


def test_monai_computes_float64_in_float32():
    impl = _peer("monai")
    logits = torch.randn(16, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    target = torch.arange(16) % 7
    error = float((impl(logits, target) - focalbench.get_implementation("numpy_reference")(logits, target)).abs())
    assert 1e-12 < error < 1e-5  # float32's rounding, not float64's


def test_focal_loss_torch_caps_a_hopeless_loss_and_kills_its_gradient():
    """A gap of 50 against the target: the exact loss is 50 (gamma 0); -log(p_t + 1e-16) gives 36.84, gradient 0."""
    impl = _peer("focal_loss_torch")
    logits = torch.tensor([[50.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = impl(logits, torch.tensor([1]), gamma=0.0, reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    assert loss.item() == pytest.approx(-math.log(1e-16 + math.exp(-50)), rel=1e-12)  # 36.84, not 50
    assert grad.abs().max().item() < 1e-5  # p_t / (p_t + 1e-16) ~ 2e-6 of cross-entropy's (1, -1)


@pytest.mark.parametrize("name", ["monai", "focal_loss_torch", "smp"])
def test_fractional_gamma_at_a_confident_row_gives_a_nan_gradient(name):
    impl = _peer(name)
    logits = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    (grad,) = torch.autograd.grad(impl(logits, torch.tensor([0]), gamma=0.5, reduction="sum"), logits)
    assert bool(grad.isnan().all())


def test_kornia_keeps_the_fractional_gamma_gradient_finite_at_a_confident_row():
    if "kornia" not in list_implementations():
        pytest.skip("kornia is not installed")
    logits = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    # its detached focal factor at saturated rows keeps this one finite
    (grad,) = torch.autograd.grad(get_implementation("kornia")(logits, torch.tensor([0]), gamma=0.5), logits)
    assert bool(torch.isfinite(grad).all())


def test_smp_is_loaded_without_running_its_package():
    _peer("smp")
    assert "segmentation_models_pytorch" not in sys.modules  # its __init__ imports timm and torchvision


def test_check_of_two_peers_exits_zero_with_their_defects_as_expected_failures(capsys):
    _peer("kornia"), _peer("monai")
    checks = ["accurate_at_extremes", "empty_batch", "paper_figure_1"]
    assert main(["check", "kornia", "monai", *(a for c in checks for a in ("--check", c))]) == 0
    out = capsys.readouterr().out
    assert "xfail" in out and "unexpected" not in out


# --- a user's own callable (e.g. a peer's function through module:attr) declares what it is ------------------------


def _users_module(monkeypatch, **declarations):
    gather = get_implementation("gather")

    def users_focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        """A user's focal loss (gather's, here) without ignore_index or alpha."""
        loss = gather(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index)
        if alpha is not None or bool((target == ignore_index).any()):
            raise NotImplementedError("no alpha, no ignore_index")  # an honest refusal, not a defect
        return loss

    for attribute, value in declarations.items():
        setattr(users_focal_loss, attribute, value)
    module = types.ModuleType("users_peer")
    module.users_focal_loss = users_focal_loss
    monkeypatch.setitem(sys.modules, "users_peer", module)
    return "users_peer:users_focal_loss"


DECLARED = dict(
    focalbench_devices=("cpu",),
    focalbench_capabilities={"dense", "reduction:none", "double_backward"},
    focalbench_known_defects=get_implementation("gather").known_defects,
)


def test_a_users_callable_declares_capabilities_and_known_defects(monkeypatch):
    impl = load_implementation(_users_module(monkeypatch, **DECLARED), "softmax")
    assert (
        impl.external
        and impl.devices == ("cpu",)
        and impl.capabilities == {"dense", "reduction:none", "double_backward"}
    )
    ignoring = next(c for c in CHECKS["matches_reference"].cases() if c.ignore_fraction and c.alpha_kind == "none")
    assert evaluate(impl, CHECKS["matches_reference"], ignoring).status == "n/a"  # not a failure
    confident = next(c for c in CHECKS["accurate_at_extremes"].cases() if c.margin == 30)
    assert evaluate(impl, CHECKS["accurate_at_extremes"], confident).status == "xfail"
    # without declarations: every capability claimed
    undeclared = load_implementation(_users_module(monkeypatch), "softmax")
    assert evaluate(undeclared, CHECKS["matches_reference"], ignoring).status == "fail"


@pytest.mark.parametrize(
    ("declarations", "error", "message"),
    [
        (
            {"focalbench_capabilities": {"dense", "teleport"}},
            ValueError,
            r"focalbench_capabilities of .* must be among",
        ),
        ({"focalbench_dtypes": ("float32",)}, TypeError, r"must be device names, torch dtypes and KnownDefects"),
        ({"focalbench_known_defects": ("accurate_at_extremes",)}, TypeError, r"Got: \['accurate_at_extremes'\]"),
    ],
)
def test_bad_declarations_are_clear_errors(monkeypatch, declarations, error, message):
    with pytest.raises(error, match=message):
        load_implementation(_users_module(monkeypatch, **declarations), "softmax")


def test_run_puts_a_users_callable_in_the_reports_checks(monkeypatch, tmp_path):
    spec = _users_module(monkeypatch, **DECLARED)
    args = ["run", "--family", "softmax", "--impl", spec, "--shape", "256x5", "--rounds", "1", "--quick",
            "--output", str(tmp_path)]  # fmt: skip
    assert main(args) == 0
    (report,) = tmp_path.glob("focalbench-*.json")
    checks = json.loads(report.read_text())["checks"][spec]
    assert checks["matches_reference"] == "pass" and checks["accurate_at_extremes"] == "xfail"
    assert set(checks.values()) <= {"pass", "xfail", "n/a"}
