"""DistributedDataParallel (gloo, 2 processes on the CPU): the losses behave as F.cross_entropy does under DDP.

DDP averages the ranks' gradients. So a ``"sum"`` loss's DDP gradient times the world size is the one-process
gradient over the concatenated batch; a ``"mean"`` is a mean of per-rank means (as ``F.cross_entropy``'s is); the
global mean, RetinaNet's normalizer, divides each rank's sum by the all-reduced count over the world size.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

WORLD = 2
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built in")


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(2 * 12, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (2 * 12,), generator=g)
    labels[3:9] = -100  # rank 0 holds more ignored elements than rank 1: the per-rank counts differ
    boxes = (torch.rand(2 * 12, 4, generator=g, dtype=torch.float64) < 0.2).double()  # sigmoid targets
    return features, labels, boxes


def _model(seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(5, 4).double()


def _losses(model, features, labels, boxes, num_positives, world):
    from focalbench import focal_loss, sigmoid_focal_loss

    logits = model(features)
    return {
        "sum": focal_loss(logits, labels, reduction="sum"),
        "mean": focal_loss(logits, labels, reduction="mean"),
        # RetinaNet's normalizer: every rank divides its sum by the all-reduced number of positives / world size
        "global": sigmoid_focal_loss(logits, boxes, reduction="sum") / (num_positives / world),
    }


def _rank(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD)
    try:
        features, labels, boxes = _batch()
        part = slice(rank * 12, (rank + 1) * 12)
        num_positives = boxes[part].sum()
        dist.all_reduce(num_positives)
        grads = {}
        for name in ("sum", "mean", "global"):
            model = DistributedDataParallel(_model())
            loss = _losses(model, features[part], labels[part], boxes[part], num_positives, WORLD)[name]
            loss.backward()
            grads[name] = model.module.weight.grad.clone()
        if rank == 0:
            torch.save(grads, out)
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_are_those_of_cross_entropy_under_ddp(tmp_path) -> None:
    import torch.multiprocessing as mp

    out = tmp_path / "grads.pt"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    context = mp.spawn(_rank, args=(f"file://{tmp_path / 'rendezvous'}", str(out)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 180  # bounded: a hung rendezvous fails the test instead of hanging the suite
    while not context.join(timeout=5):  # False while a rank still runs (a rank's exception is raised here)
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the DDP ranks did not finish within 180 s")
    ddp = torch.load(out)

    features, labels, boxes = _batch()
    single = {}
    for name in ("sum", "mean", "global"):
        model = _model()
        _losses(model, features, labels, boxes, boxes.sum(), 1)[name].backward()
        single[name] = model.weight.grad
    torch.testing.assert_close(ddp["sum"] * WORLD, single["sum"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ddp["global"], single["global"], rtol=1e-12, atol=1e-12)

    per_rank = []  # "mean": the mean of the ranks' means, as F.cross_entropy's under DDP
    for rank in range(WORLD):
        model, part = _model(), slice(rank * 12, (rank + 1) * 12)
        _losses(model, features[part], labels[part], boxes[part], boxes.sum(), 1)["mean"].backward()
        per_rank.append(model.weight.grad)
    torch.testing.assert_close(ddp["mean"], sum(per_rank) / WORLD, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(ddp["mean"], single["mean"])  # uneven ignore counts: not the global mean
