"""A training step on CUDA (a two-layer head + loss + backward + SGD) in steps per second, for F.cross_entropy and
for focal_loss / sigmoid_focal_loss with and without the host value checks (``focalbench.check_values()``: the
target's range read back, one synchronization per call), and whether a step synchronizes at all
(``torch.cuda.set_sync_debug_mode("error")``). Writes a markdown table; run by .ci/cuda-run."""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

import focalbench

STEPS = 50


def steps_per_second(step, repeats: int = 5) -> tuple[float, float]:
    """Median and range-half-width of steps/s over ``repeats`` runs of ``STEPS`` steps, timed on the host (the host
    is what a synchronization stalls)."""
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(STEPS):
            step()
        torch.cuda.synchronize()
        rates.append(STEPS / (time.perf_counter() - start))
    return statistics.median(rates), (max(rates) - min(rates)) / 2


def synchronizes(step) -> str:
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
        return "no"
    except RuntimeError as error:
        return f"yes: {str(error).splitlines()[0][:80]}"
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()


def rows(rows: int, classes: int, width: int = 256):
    head = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, classes)).cuda()
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01)
    features = torch.randn(rows, width, device="cuda")
    labels = torch.randint(0, classes, (rows,), device="cuda")
    binary = (torch.rand(rows, classes, device="cuda") > 0.9).float()

    def make(loss_fn, target, checks: bool):
        def step():
            optimizer.zero_grad(set_to_none=True)
            with focalbench.check_values() if checks else contextlib.nullcontext():
                loss = loss_fn(head(features), target)
            loss.backward()
            optimizer.step()

        return step

    sigmoid = lambda z, t: focalbench.sigmoid_focal_loss(z, t, reduction="mean")  # noqa: E731
    return [
        ("F.cross_entropy", make(F.cross_entropy, labels, False)),
        ("focal_loss", make(focalbench.focal_loss, labels, False)),
        ("focal_loss, check_values()", make(focalbench.focal_loss, labels, True)),
        ("F.binary_cross_entropy_with_logits", make(F.binary_cross_entropy_with_logits, binary, False)),
        ("sigmoid_focal_loss", make(sigmoid, binary, False)),
        ("sigmoid_focal_loss, check_values()", make(sigmoid, binary, True)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=None, help="markdown file to write (default: stdout only)")
    options = parser.parse_args()
    lines = [
        f"Device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {STEPS} steps a run, 5 runs.",
        "",
        "| rows x classes | loss | steps/s (median +- half range) | synchronizes |",
        "|---|---|---|---|",
    ]
    for shape in ((65536, 80), (8 * 128 * 128, 21), (256, 1000)):
        for name, step in rows(*shape):
            rate, spread = steps_per_second(step)
            lines.append(f"| {shape[0]} x {shape[1]} | {name} | {rate:.1f} +- {spread:.1f} | {synchronizes(step)} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if options.output:
        with open(options.output, "w") as handle:
            handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
