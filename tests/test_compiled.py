"""The compiled implementation compiles a bounded number of graphs: not one per gamma or batch size."""

from __future__ import annotations

import torch
import torch._dynamo

import focalbench


def test_new_gamma_batch_size_class_count_and_layout_do_not_recompile():
    impl = focalbench.get_implementation("compiled")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    for i, (shape, gamma, reduction) in enumerate(
        [((8, 5), 2.0, "mean"), ((9, 5), 0.5, "sum"), ((33, 7), 5.0, "none"), ((2, 3, 4, 5), 1.0, "mean")]
    ):
        g = torch.Generator().manual_seed(i)
        logits = torch.randn(*shape, generator=g, requires_grad=True)
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g)
        impl(logits, target, gamma=gamma, reduction=reduction).sum().backward()
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    # one graph for the first (static) shapes at most plus one dynamic one
    assert frames <= 2, dict(torch._dynamo.utils.counters["stats"])
