"""The fused linear focal loss as users call it: the function and the module, a training step beside the unfused
form, autocast, export, the chunk size's independence of the rows, and the power of the memory check (the family's
checks and mutants run in test_conformance and test_mutants)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import focalbench
from focalbench import FusedLinearFocalLoss, focal_loss, fused_linear_focal_loss
from focalbench.arena.families.linear import cases, checks
from focalbench.arena.registry import get_implementation
from focalbench.losses.linear.semantics import CHUNK_ELEMENTS, default_chunk_size


def _head(rows=24, features=16, classes=50, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(features, classes).to(dtype)
    with torch.no_grad():
        head.weight.copy_(torch.randn(classes, features, generator=g))
        head.bias.copy_(torch.randn(classes, generator=g))
    hidden = torch.randn(rows, features, generator=g, dtype=dtype)
    target = torch.randint(0, classes, (rows,), generator=g)
    target[::5] = -100
    return head, hidden, target


def test_it_is_exported_and_matches_the_unfused_form_on_a_batch_of_sequences() -> None:
    assert focalbench.RECOMMENDED_LINEAR == "linear_fused"
    head, hidden, target = _head(rows=24)
    hidden, target = hidden.reshape(2, 12, -1), target.reshape(2, 12)
    for reduction in ("mean", "sum", "none"):
        fused = fused_linear_focal_loss(hidden, head.weight, target, head.bias, gamma=1.5, reduction=reduction,
                                        chunk_size=5)  # fmt: skip
        logits = head(hidden).reshape(24, -1)
        unfused = focal_loss(logits, target.reshape(-1), gamma=1.5, reduction=reduction)
        assert fused.shape == (unfused.reshape(2, 12).shape if reduction == "none" else ())
        torch.testing.assert_close(fused.reshape(unfused.shape), unfused, rtol=2e-5, atol=2e-6)


def test_a_few_training_steps_follow_the_unfused_forms() -> None:
    """Three SGD steps of a head: the parameters stay within float32 rounding of the unfused form's."""
    fused_head, hidden, target = _head(seed=1)
    unfused_head, _, _ = _head(seed=1)
    criterion = FusedLinearFocalLoss(gamma=2.0, alpha=0.25)
    steps = [torch.optim.SGD(h.parameters(), lr=0.5) for h in (fused_head, unfused_head)]
    for _ in range(3):
        for optimizer in steps:
            optimizer.zero_grad()
        criterion(hidden, fused_head.weight, target, fused_head.bias).backward()
        focal_loss(unfused_head(hidden), target, gamma=2.0, alpha=0.25).backward()
        for optimizer in steps:
            optimizer.step()
    torch.testing.assert_close(fused_head.weight, unfused_head.weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fused_head.bias, unfused_head.bias, rtol=1e-5, atol=1e-6)


def test_the_module_holds_its_arguments_like_focal_loss_does() -> None:
    criterion = FusedLinearFocalLoss(gamma=2.0, alpha=[0.5] * 50, ignore_index=-1, chunk_size=8)
    assert sorted(criterion.state_dict()) == ["alpha"]
    criterion.gamma = 0.5  # a schedule fills it in place
    assert "gamma=0.5" in repr(criterion) and "chunk_size=8" in repr(criterion)
    head, hidden, target = _head()
    target = target.masked_fill(target == -100, -1)
    expected = fused_linear_focal_loss(hidden, head.weight, target, head.bias, gamma=0.5, alpha=[0.5] * 50,
                                       ignore_index=-1, chunk_size=8)  # fmt: skip
    torch.testing.assert_close(criterion(hidden, head.weight, target, head.bias), expected)
    with pytest.raises(ValueError, match="chunk_size"):
        FusedLinearFocalLoss(chunk_size=0)


def test_under_autocast_the_products_are_bfloat16_and_the_loss_float32_as_the_unfused_forms() -> None:
    head, hidden, target = _head()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fused = fused_linear_focal_loss(hidden, head.weight, target, head.bias)
        unfused = focal_loss(head(hidden), target)
    assert fused.dtype == unfused.dtype == torch.float32
    torch.testing.assert_close(fused, unfused, rtol=1e-5, atol=1e-6)  # the same bfloat16 logits, the same kernel
    fused.backward()
    assert head.weight.grad.dtype == torch.float32


def test_torch_export_of_a_model_with_the_loss_runs_as_eager() -> None:
    class LanguageModelHead(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(16, 50)

        def forward(self, hidden, target):
            return fused_linear_focal_loss(hidden, self.head.weight, target, self.head.bias, chunk_size=7)

    model = LanguageModelHead()
    _, hidden, target = _head()
    exported = torch.export.export(model, (hidden, target))
    torch.testing.assert_close(exported.module()(hidden, target), model(hidden, target))


def test_the_default_chunk_depends_on_the_vocabulary_alone() -> None:
    assert default_chunk_size(65536) == 256 and default_chunk_size(131072) == 128
    assert default_chunk_size(10) == CHUNK_ELEMENTS // 16  # a power of two below 2^24 / 10
    assert default_chunk_size(1 << 30) == 64  # at least 64 rows: the matrix product keeps its speed


@pytest.mark.parametrize("name", ["linear_unfused", "linear_reference"])
def test_the_memory_check_catches_an_implementation_that_holds_every_logit(name: str) -> None:
    """linear_memory's power: the two implementations that hold the N x V logits fail it (they do not declare
    ``chunked``, so the matrix never asks them)."""
    failure = checks._memory(get_implementation(name), cases.memory_cases()[0], "cpu")
    assert failure is not None and "grew by" in failure


def test_a_second_backward_recomputes_what_the_first_handed_over() -> None:
    head, hidden, target = _head()
    h = hidden.clone().requires_grad_(True)
    loss = fused_linear_focal_loss(h, head.weight, target, head.bias, reduction="sum", chunk_size=6)
    first = torch.autograd.grad(loss, (h, head.weight, head.bias), torch.tensor(0.5), retain_graph=True)
    second = torch.autograd.grad(loss, (h, head.weight, head.bias), torch.tensor(0.5))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_bad_input_is_refused_before_any_product() -> None:
    head, hidden, target = _head()
    calls = []
    weight = head.weight.detach()

    class Counting(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func in (F.linear, torch.mm, torch.matmul):
                calls.append(func)
            return func(*args, **(kwargs or {}))

    with Counting(), pytest.raises(ValueError, match="target"):
        fused_linear_focal_loss(hidden, weight, target.masked_fill(target == -100, 50))
    assert calls == []
