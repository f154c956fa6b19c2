"""A/B speed runs: two commits measured on one machine in one job, in alternating rounds (as asv's ``continuous``).

Where no committed baseline matches the machine kind (``results/baselines/<family>/<machine fingerprint>.json``), the
gate cannot compare against stored numbers: ratios to cross-entropy move by up to 2x between machine kinds on unchanged
code. It measures instead the base commit and the new one here, alternately (base, new, new, base, base, new, ...),
so a slow spell of a shared machine lands on both, merges each side's runs into per-row medians, and compares the
two (:mod:`focalbench.bench.gate`). Each side is installed from its commit into a directory of its own and run in a
subprocess with that directory first on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from focalbench.bench.gate import merge_reports
from focalbench.bench.report import read_report

__all__ = ["ABError", "install_commit", "run_alternating", "run_once"]


class ABError(RuntimeError):
    """A commit that cannot be checked out, installed or run."""


def _git(*args: str) -> str:
    """git in the current directory: the repository the commits are named in."""
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise ABError(f"git {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout.strip()


def install_commit(ref: str, workdir: Path) -> Path:
    """Install the package as it is at ``ref`` (no dependencies: they are this environment's) into a new directory."""
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    place = Path(tempfile.mkdtemp(prefix=f"{commit[:10]}-", dir=workdir))  # the same commit may be both sides
    tree, site = place / "tree", place / "site"
    archive = subprocess.run(["git", "archive", commit], capture_output=True)
    if archive.returncode != 0:
        raise ABError(f"git archive {commit}: {archive.stderr.decode(errors='replace').strip()}")
    tree.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(tree)],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise ABError(f"installing {commit[:10]} failed:\n{pip.stderr[-2000:]}")
    return site


def run_once(site: Path | None, output: Path, run_args: Sequence[str]) -> Path:
    """One ``focalbench run`` with ``run_args`` in a subprocess, of the focalbench installed at ``site`` (None: this
    environment's); the path of the JSON report it wrote into ``output``."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    before = set(output.glob("focalbench-cpu-*.json"))
    result = subprocess.run(
        [sys.executable, "-m", "focalbench.cli", "run", *run_args, "--output", str(output)],
        env=env,
        cwd=tempfile.gettempdir(),  # not the checkout: its focalbench/ must not shadow the installed one
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise ABError(f"focalbench run ({site or 'this checkout'}) failed:\n{result.stderr[-2000:]}")
    (report,) = set(output.glob("focalbench-cpu-*.json")) - before
    return report


def run_alternating(
    base_site: Path,
    new_site: Path | None,
    workdir: Path,
    rounds: int,
    run_args: Sequence[str],
    progress: Callable[[str], None] | None = None,
) -> tuple[dict, dict]:
    """``rounds`` runs of each side in alternating order; (base, new) reports of per-row medians.

    ``new_site`` None runs the installed focalbench (this checkout).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1. Got: {rounds}")
    sides = {"base": (base_site, workdir / "base"), "new": (new_site, workdir / "new")}
    reports: dict[str, list[dict]] = {"base": [], "new": []}
    for directory in (workdir / "base", workdir / "new"):
        directory.mkdir(parents=True, exist_ok=True)
    for r in range(rounds):
        order = ("base", "new") if r % 2 == 0 else ("new", "base")
        for side in order:
            site, output = sides[side]
            reports[side].append(read_report(run_once(site, output, run_args)))
            if progress is not None:
                progress(f"round {r + 1}/{rounds}: {side} done")
    # one machine, one job: the base commit's reports may predate machine fingerprints
    return merge_reports(reports["base"], same_machine=True), merge_reports(reports["new"], same_machine=True)
