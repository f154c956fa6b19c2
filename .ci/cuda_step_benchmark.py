"""A training step on CUDA (linear head + loss + backward + SGD), timed with CUDA events, to measure what the host
synchronization of focal_loss's target check costs: the step with focal_loss, with F.cross_entropy, and the check
alone (semantics.validate, whose aminmax is read on the host). Prints a markdown table; run by .ci/cuda-run."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from focalbench import focal_loss
from focalbench.losses.softmax.semantics import validate


def timed(fn, repeats: int = 50) -> float:
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end))
    return statistics.median(samples)


def measure(rows: int, classes: int) -> tuple[float, float, float]:
    head = torch.nn.Linear(256, classes, device="cuda")
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
    features = torch.randn(rows, 256, device="cuda")
    target = torch.randint(0, classes, (rows,), device="cuda")

    def step(loss_fn):
        optimizer.zero_grad(set_to_none=True)
        loss_fn(head(features), target).backward()
        optimizer.step()

    logits = head(features).detach()
    cross_entropy_ms = timed(lambda: step(F.cross_entropy))
    return cross_entropy_ms, timed(lambda: step(focal_loss)), timed(lambda: validate(logits, target))


def main() -> None:
    print("| rows x classes | step with F.cross_entropy ms | step with focal_loss ms | validate alone ms |")
    print("|---|---|---|---|")
    for rows, classes in ((65536, 80), (8 * 128 * 128, 21), (256, 1000)):
        ce, focal, check = measure(rows, classes)
        print(f"| {rows} x {classes} | {ce:.3f} | {focal:.3f} | {check:.3f} |")


if __name__ == "__main__":
    main()
