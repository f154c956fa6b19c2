"""Autograd behaviour of the closed-form wiring (focalbench.losses.common.FusedLoss): no gradient work when none is
needed, and a
double backward (gradient penalties) that is correct rather than silently zero."""

from __future__ import annotations

import pytest
import torch

import focalbench
import focalbench.losses.common
from focalbench.arena.registry import get_implementation, list_implementations


def _kernel_calls(monkeypatch) -> list[bool]:
    """Record the ``need_grad`` every forward kernel is called with, for every implementation using the wiring."""
    calls: list[bool] = []
    apply = focalbench.losses.common.FusedLoss.apply

    def spy(logits, args, kernel, closed_form, need_grad):
        def recording_kernel(args, need_grad):
            calls.append(need_grad)
            return kernel(args, need_grad)

        return apply(logits, args, recording_kernel, closed_form, need_grad)

    monkeypatch.setattr(focalbench.losses.common.FusedLoss, "apply", spy)
    return calls


CONTEXTS = {
    "no_grad": (torch.no_grad, True),
    "inference_mode": (torch.inference_mode, True),
    "logits_without_grad": (torch.enable_grad, False),
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", list_implementations(family="softmax"))
def test_no_gradient_is_computed_when_none_is_needed(name, context, monkeypatch, device):
    impl = get_implementation(name)
    if impl.supports(device=device):
        pytest.skip(impl.supports(device=device))
    calls = _kernel_calls(monkeypatch)
    manager, requires_grad = CONTEXTS[context]
    logits = torch.randn(6, 5, device=device)
    target = torch.tensor([0, 1, 2, 3, 4, 0], device=device)
    impl(logits.clone().requires_grad_(True), target)  # with a gradient wanted, the kernel is asked for it
    if not calls:
        pytest.skip(f"{name} does not use the closed-form wiring")
    with manager():
        loss = impl(logits.requires_grad_(requires_grad), target)
    assert calls == [True, False] and not loss.requires_grad


def test_focal_loss_gradient_penalty_equals_autograd_through_log_softmax(device):
    """A gradient penalty through focal_loss (the recommended implementation) equals gather's; gradgradcheck holds."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64).to(device)
    target = torch.tensor([0, 1, 2, 3, 4, -100], device=device)
    kwargs = dict(gamma=2.0, alpha=[0.25, 1.0, 0.5, 2.0, 1.0])

    def penalty_gradient(fn) -> tuple[torch.Tensor, torch.Tensor]:
        x = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x, target, **kwargs), x, create_graph=True)
        (second,) = torch.autograd.grad(grad.pow(2).sum(), x)
        return grad, second

    grad, second = penalty_gradient(focalbench.focal_loss)
    expected_grad, expected_second = penalty_gradient(get_implementation("gather"))
    assert second.abs().max() > 1e-3  # not a silent zero
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(second, expected_second, rtol=1e-10, atol=1e-12)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda z: focalbench.focal_loss(z, target, **kwargs), (x,))
