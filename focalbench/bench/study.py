"""The gate's own study: how often ``.ci/gate`` raises a false alarm on unchanged code, and how often it catches the
slowdowns people make — every call slower, or one code path (one shape) slower — of each family's product.

Each slowdown is a commit on top of the studied one, in a clone (never in the studied repository): the family's
recommended implementation is wrapped so that a call busy-waits ``factor - 1`` times as long as it took, always or
only at one of the family's shapes. The gate run is the whole gate (every family's rows judged in one verdict), so the
false alarms counted are those of the gate CI runs. In baseline mode each side is installed into a directory of its
own and the gate compares a quick run with the committed baselines of this machine kind; in A/B mode the gate measures
the studied commit against the slowed one in alternating rounds. Asv's A/A practice, with the slowdowns users actually
ship (a change to one code path) as well as the uniform one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["INJECTION", "SLOWDOWN_NAMES", "GateRun", "Slowdown", "dumps", "slowdowns", "study", "summary_lines"]


@dataclass(frozen=True)
class Slowdown:
    name: str
    factor: float
    condition: str  # a Python expression in `logits`: where the slowdown applies
    description: str


def slowdowns(family: str) -> dict[str, Slowdown]:
    """The injected regressions of ``family``'s recommended implementation: none (unchanged code), every call 1.3x,
    2x at one shape only: the family's last representative shape (its float32 row alone: the bfloat16 row is timed at
    the first shape)."""
    from focalbench.arena.family import get_family

    shapes = [s for s in get_family(family).workload.shapes if not s.sweep]
    one = shapes[-1]
    return {
        slowdown.name: slowdown
        for slowdown in (
            Slowdown("unchanged", 1.0, "False", "unchanged code (A/A): every flag is a false alarm"),
            Slowdown("uniform-1.3x", 1.3, "True", "every call 1.3x as long"),
            Slowdown("one-shape-2x", 2.0, f"tuple(logits.shape) == {tuple(one.shape)!r}",
                     f"2x only at one shape, {one.name} {tuple(one.shape)}"),  # fmt: skip
        )
    }


#: The names of the slowdowns, each family's (in the order a study runs them).
SLOWDOWN_NAMES = ("unchanged", "uniform-1.3x", "one-shape-2x")


#: What a slowdown commit appends to the implementation's file (formatted with impl, factor, condition).
INJECTION = """

# gate study only: `{impl}` slowed {factor}x where {condition}
import dataclasses as _dataclasses
import time as _time

from focalbench.arena import registry as _registry

_fast = _registry.unregister({impl!r})


def _slowed(logits, target, **kwargs):
    start = _time.perf_counter()
    out = _fast.fn(logits, target, **kwargs)
    if {condition}:
        end = _time.perf_counter() + ({factor} - 1) * (_time.perf_counter() - start)
        while _time.perf_counter() < end:
            pass
    return out


_registry.add(_dataclasses.replace(_fast, fn=_slowed))
"""


@dataclass(frozen=True)
class GateRun:
    slowdown: str
    run: int
    flagged: bool  # the gate failed the build (a regression, or a refusal)
    not_judged: bool  # the gate said every row was unreliable three times: no verdict
    exit_code: int
    seconds: float
    summary: str  # the gate's verdict lines
    named: bool = False  # a REGRESSION line named the studied family's implementation


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _prepare(source: Path, work: Path, impl: str, chosen: Sequence[Slowdown], mode: str) -> dict[str, dict]:
    """A clone of ``source``'s HEAD with one commit (on its own branch) per slowdown; returns, per slowdown, the
    environment its gate runs need."""
    repo = work / "repo"
    subprocess.run(["git", "clone", "-q", str(source), str(repo)], check=True)
    base = _git(repo, "rev-parse", "HEAD")
    sides: dict[str, dict] = {}
    for slowdown in chosen:
        commit = base
        if slowdown.factor != 1.0:
            _git(repo, "checkout", "-q", "-B", f"study-{slowdown.name}", base)
            path = repo / "implementations" / f"{impl}.py"
            path.write_text(path.read_text() + INJECTION.format(impl=impl, factor=slowdown.factor,
                                                                 condition=slowdown.condition))  # fmt: skip
            _git(repo, "-c", "user.name=study", "-c", "user.email=study@localhost", "commit", "-qam",
                 f"gate study: {slowdown.description}")  # fmt: skip
            commit = _git(repo, "rev-parse", "HEAD")
        if mode == "ab":
            sides[slowdown.name] = {"FOCALBENCH_GATE_MODE": "ab", "FOCALBENCH_GATE_BASE": base,
                                    "FOCALBENCH_GATE_NEW": commit}  # fmt: skip
        else:
            site = work / f"site-{slowdown.name}"
            tree = work / f"tree-{slowdown.name}"
            subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(tree), commit],
                           check=True)  # fmt: skip
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                            str(tree)], check=True)  # fmt: skip
            sides[slowdown.name] = {"FOCALBENCH_GATE_MODE": "baseline", "PYTHONPATH": str(site)}
    _git(repo, "checkout", "-q", base)
    return sides


def study(
    source: Path,
    mode: str,
    runs: dict[str, int],
    family: str,
    progress: Callable[[str], None] = print,
) -> dict:
    """Run ``.ci/gate`` (every family's gated rows, one verdict) ``runs[name]`` times per slowdown of ``family``'s
    recommended implementation (:func:`slowdowns`); returns the study as a document (every run's verdict, and per
    slowdown how many runs the gate flagged)."""
    import time

    from focalbench.arena.family import get_family

    impl = get_family(family).recommended
    catalogue = slowdowns(family)
    chosen = [catalogue[name] for name in runs]
    results: list[GateRun] = []
    with tempfile.TemporaryDirectory(prefix="focalbench-study-") as directory:
        work = Path(directory)
        sides = _prepare(source, work, impl, chosen, mode)
        gate = work / "repo" / ".ci" / "gate"
        for slowdown in chosen:
            for run in range(1, runs[slowdown.name] + 1):
                env = {**os.environ, **sides[slowdown.name]}
                started = time.perf_counter()
                done = subprocess.run(["bash", str(gate)], cwd=work / "repo", env=env, capture_output=True,
                                      text=True)  # fmt: skip
                lines = [line for line in (done.stdout + done.stderr).splitlines()
                         if line.startswith(("REGRESSION", "NOT JUDGED", "gate:"))]  # fmt: skip
                not_judged = "gate: NOT JUDGED" in done.stdout
                named = any(line.startswith(f"REGRESSION {family} / {impl} /") for line in lines)
                outcome = GateRun(slowdown.name, run, done.returncode != 0, not_judged, done.returncode,
                                  round(time.perf_counter() - started, 1), " | ".join(lines), named)  # fmt: skip
                results.append(outcome)
                verdict = "FLAGGED" if outcome.flagged else "NOT JUDGED" if not_judged else "pass"
                progress(f"{slowdown.name} run {run}: {verdict} ({outcome.seconds:.0f} s) {outcome.summary[-240:]}")
    totals = {
        name: {"runs": runs[name], "flagged": sum(r.flagged for r in results if r.slowdown == name),
               "not_judged": sum(r.not_judged for r in results if r.slowdown == name),
               "named": sum(r.named for r in results if r.slowdown == name),
               "factor": catalogue[name].factor, "condition": catalogue[name].condition,
               "description": catalogue[name].description}
        for name in runs
    }  # fmt: skip
    return {"kind": "gate-study", "mode": mode, "family": family, "implementation": impl, "totals": totals,
            "runs": [asdict(r) for r in results]}  # fmt: skip


def summary_lines(document: dict) -> list[str]:
    """The study's verdict in words: false alarms of unchanged code, catches of each slowdown, with their counts."""
    lines = []
    for name, total in document["totals"].items():
        what = "false alarms" if total.get("factor", 1.0 if name == "unchanged" else 2.0) == 1.0 else "caught"
        unjudged = f", not judged {total['not_judged']}" if total.get("not_judged") else ""
        named = ""
        if what == "caught" and "named" in total:
            named = f", naming the slowed family's rows {total['named']}/{total['runs']}"
        lines.append(f"{name}: {what} {total['flagged']}/{total['runs']}{unjudged}{named} ({total['description']})")
    return lines


def dumps(document: dict) -> str:
    return json.dumps(document, indent=1) + "\n"
