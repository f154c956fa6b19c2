"""The compiled implementation compiles a bounded number of graphs: not one per gamma, size or layout."""

from __future__ import annotations

import itertools

import torch
import torch._dynamo

import focalbench
from focalbench.implementations.compiled import MAX_GRAPHS


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def test_gamma_size_class_count_and_layout_do_not_recompile():
    impl = focalbench.get_implementation("compiled")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    shapes = [(8, 5), (9, 5), (33, 7), (2, 3, 4, 5), (3, 21, 2, 2)]
    gammas = [2.0, 0.5, 5.0, 1.0]
    for i, (shape, gamma, reduction) in enumerate(zip(shapes * 2, itertools.cycle(gammas), itertools.cycle(
        ["mean", "sum", "none"]))):  # fmt: skip
        g = torch.Generator().manual_seed(i)
        logits = torch.randn(*shape, generator=g, requires_grad=True)
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
        impl(logits, target, gamma=gamma, reduction=reduction).sum().backward()
    # dynamo may compile a first static graph before it turns sizes dynamic: two at most for one dtype and mode
    assert _graphs() <= 2, dict(torch._dynamo.utils.counters["stats"])


def test_every_graph_variant_stays_within_the_declared_bound():
    impl = focalbench.get_implementation("compiled")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    # float32 only: float64 doubles the count the same way; going past the bound would raise here
    for dtype, grad, rows, view in itertools.product((torch.float32,), (True, False), (1, 6), (0, 1)):
        base = torch.randn(rows, 4 + view, dtype=dtype)
        logits = (base[:, :4] if view else base).detach().requires_grad_(grad)
        target = torch.zeros(rows, dtype=torch.long)
        with torch.set_grad_enabled(grad):
            impl(logits, target, gamma=1.5)
    assert _graphs() <= MAX_GRAPHS // 2
