"""One timed row of one commit: run as a program in a process whose ``focalbench`` is that commit's installed copy.

:mod:`focalbench.bench.bisect` (and anything else that times old commits) cannot call a commit's ``focalbench run``:
its options, families and shapes change from commit to commit (the sigmoid family once had no ``--family``). This
program needs of the commit only what every commit since the implementation existed offers: an importable callable,
``focalbench.get_implementation(name)`` or a ``module:attr``. Everything else comes from the caller's (current)
checkout, pickled into the job file: the inputs, the baseline loss (a picklable callable such as a
``functools.partial`` of ``F.cross_entropy``), and the keywords of the implementation's call.

So that no module of the caller's checkout can shadow the commit's, this file imports nothing but the standard library
and torch, and is run as ``python -c <this file's text> JOB``: :func:`command` builds that command line.

Timing: forward+backward of the implementation and of the baseline in alternating turns (one pair a round, the order
alternating too), after warm-up calls that build and load the commit's kernel (its cache is keyed by the source, so a
commit's kernel is built once). A turn is ``inner`` calls in a row and its sample the fastest of them: a stall of a
shared machine (another process's time slice, ~10 ms, against calls of a fraction of that) only ever adds time, so
the minimum of a few calls is the call's own time where one call's time is the stall's. The output (stdout, one JSON
line) holds both series of per-turn seconds.
"""

from __future__ import annotations

import importlib
import json
import pickle
import sys
import time

__all__ = ["command", "main"]


def command(job: str) -> list[str]:
    """The command line that runs this program on the pickled job file ``job``."""
    with open(__file__, encoding="utf-8") as source:
        return [sys.executable, "-c", source.read(), job]


def _resolve(spec: str):
    """``module:attr`` or a registered name, resolved in this process's ``focalbench`` (the commit under test)."""
    if ":" in spec:
        module, _, attr = spec.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    import focalbench

    return focalbench.get_implementation(spec)


def _seconds(fn, logits, inner: int = 1) -> float:
    """The fastest of ``inner`` forward+backward calls of ``fn``."""
    best = float("inf")
    for _ in range(inner):
        logits.grad = None
        start = time.perf_counter()
        fn(logits).backward()
        best = min(best, time.perf_counter() - start)
    return best


def _time_row(job: dict, inner: int) -> dict:
    """One row's two series of per-turn seconds: ``{"samples_s": [...], "baseline_samples_s": [...]}``."""
    import torch

    torch.set_num_threads(job["threads"])
    impl = _resolve(job["impl"])
    baseline = job["baseline"]
    target = job["target"]
    logits = job["logits"].detach().clone().requires_grad_(True)
    keywords = job["keywords"]
    sides = {
        "impl": lambda x: impl(x, target, **keywords),
        "baseline": lambda x: baseline(x, target),
    }
    for _ in range(job["warmup"]):
        for fn in sides.values():
            _seconds(fn, logits)
    samples: dict[str, list[float]] = {"impl": [], "baseline": []}
    for r in range(job["rounds"]):
        for side in ("impl", "baseline") if r % 2 == 0 else ("baseline", "impl"):
            samples[side].append(_seconds(sides[side], logits, inner))
    return {"samples_s": samples["impl"], "baseline_samples_s": samples["baseline"]}


def main(job_path: str) -> dict:
    """Time the job's row; returns ``{"samples_s": [...], "baseline_samples_s": [...], "focalbench": path}``.

    A job with ``"rows"`` (a list of row jobs) times each in turn and returns ``{"rows": [...], "focalbench": path}``,
    a row this commit cannot run (an implementation it does not have, an error in its code) as ``{"error": text}``
    while the other rows are still timed."""
    with open(job_path, "rb") as handle:
        job = pickle.load(handle)
    import focalbench

    where = str(getattr(focalbench, "__file__", ""))
    if "rows" not in job:
        return {**_time_row(job, job.get("inner", 1)), "focalbench": where}
    rows = []
    for row in job["rows"]:
        try:
            rows.append(_time_row(row, row.get("inner", 1)))
        except Exception as error:  # noqa: BLE001 - an old commit's failure is a fact of that commit, kept per row
            rows.append({"error": f"{type(error).__name__}: {error}"[:500]})
    return {"rows": rows, "focalbench": where}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
