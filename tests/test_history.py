"""focalbench history: fingerprints from git objects, measurements shared and resumed, steps found with a known
false-alarm rate, on a repository made here whose loss becomes slower at a known commit."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import pytest

from focalbench.bench.history import (
    HistoryRow,
    Point,
    commit_fingerprint,
    find_steps,
    load,
    measure_range,
    series,
)
from focalbench.bench.product_source import product_source_files, product_source_fingerprint


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def history(toy_history):
    """A package `toyloss` over four commits: fast, a docs-only change, SLOW (the third), a docs-only change. A
    stand-in product file (focalbench/kernels/toy.c) changes with the loss only, so commits 1 and 3 share the
    measurements of 0 and 2."""
    kernels = ["fast", "fast", "slow", "slow"]
    return toy_history([False, False, True, True], lambda i: {"focalbench/kernels/toy.c": f"/* {kernels[i]} */\n",
                                                              "README.md": f"{i}\n"})  # fmt: skip


def test_a_commits_fingerprint_from_git_is_the_installed_products(tmp_path, monkeypatch):
    """commit_fingerprint reads the product's files from git objects; it must equal what product_source_fingerprint
    computes on the same files as Python imports them (else commits would share measurements wrongly)."""
    for args in (["init", "-q"], ["config", "user.email", "ci@example.org"], ["config", "user.name", "ci"]):
        _git(tmp_path, *args)
    for relative, path in product_source_files():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, tmp_path / relative)
    (tmp_path / "focalbench" / "kernels" / "__pycache__").mkdir()
    (tmp_path / "focalbench" / "kernels" / "__pycache__" / "x.py").write_text("not source")  # left out by both
    (tmp_path / "focalbench" / "kernels" / "notes.txt").write_text("not source either")
    _git(tmp_path, "add", "-f", ".")
    _git(tmp_path, "commit", "-q", "-m", "the product")
    monkeypatch.chdir(tmp_path)
    assert commit_fingerprint("HEAD") == product_source_fingerprint()
    (tmp_path / "focalbench" / "kernels" / "focal_cpu.c").write_text("/* changed */\n")
    _git(tmp_path, "commit", "-q", "-am", "a kernel change")
    assert commit_fingerprint("HEAD") != commit_fingerprint("HEAD~1")
    (tmp_path / "README.md").write_text("docs\n")
    _git(tmp_path, "add", "README.md")
    _git(tmp_path, "commit", "-q", "-m", "docs only")
    assert commit_fingerprint("HEAD") == commit_fingerprint("HEAD~1")


def test_history_shares_measurements_resumes_and_names_the_step(history, tmp_path, monkeypatch):
    repo, commits = history
    monkeypatch.chdir(repo)
    row = HistoryRow("softmax", "toyloss:loss", "4096x20", "float32")
    said = []
    place = measure_range(f"{commits[0]}~0", tmp_path / "h", tmp_path / "w", rows=[row], rounds=9,
                          progress=said.append)  # fmt: skip
    assert len(said) == 1 and "measured" in said[0]  # a single ref: the commits up to it (here: the root commit)
    place = measure_range(f"{commits[0]}..{commits[3]}", tmp_path / "h", tmp_path / "w", rows=[row], rounds=9,
                          progress=said.append)  # fmt: skip
    stored = {c: json.loads((place / f"{c}.json").read_text()) for c in commits}
    assert [stored[c]["measured_by"] for c in commits] == [commits[0], commits[0], commits[2], commits[2]]
    assert stored[commits[1]]["rows"] is None and stored[commits[3]]["rows"] is None  # shared, not re-measured
    assert len(stored[commits[2]]["rows"][row.key]["ratios"]) == 9
    assert sum("measured in" in line for line in said) == 2  # commits 0 and 2 only
    # resumable: a second run over the range measures nothing
    again = []
    measure_range(f"{commits[0]}~0..{commits[3]}", tmp_path / "h", tmp_path / "w", rows=[row], progress=again.append)
    assert again == []
    records = load(place)
    assert [r["commit"] for r in records] == commits
    points = series(records, row.key)
    assert [p.commit["commit"] for p in points] == [commits[0], commits[2]]
    assert [len(p.commits) for p in points] == [2, 2]
    (step,) = find_steps(points, row.key)
    assert step.after.commit["commit"] == commits[2] and step.change > 1.0, step.line()
    shown = subprocess.run(
        [sys.executable, "-m", "focalbench.cli", "history", "--no-measure", "--output", str(tmp_path / "h")],
        capture_output=True, text=True, cwd=tmp_path,  # not the repository: its focalbench/ folder would shadow ours
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert f"step {row.key.replace('toyloss:', '')}: {commits[2][:10]} slower" in shown.stdout, shown.stdout


def test_history_refuses_an_empty_range_and_bad_options(history, tmp_path, monkeypatch, capsys):
    from focalbench.cli import main

    repo, commits = history
    monkeypatch.chdir(repo)  # in this process: the repository's stand-in focalbench/ folder must not be imported
    run = ["history", f"{commits[2]}..{commits[2]}", "--output", str(tmp_path)]
    refusals = (([], "RANGE must name at least one commit"), (["--rounds", "2"], "--rounds must be >= 5. Got: 2"),
                (["--kind", "x"], "--kind reads another machine kind's history"))  # fmt: skip
    for extra, message in refusals:
        assert main([*run, *extra]) == 2
        assert message in capsys.readouterr().err
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    other = (
        (["history", "--output", str(tmp_path)], "RANGE must name the commits to time"),
        (["history", "nonexistent..HEAD", "--output", str(tmp_path / "new")],
         "RANGE must name commits of this repository. Got: 'nonexistent..HEAD' (fatal: bad revision"),
        (["history", "HEAD~1..HEAD", "--output", str(a_file)], f"--output must be a directory. Got: {a_file} (a file)"),
    )  # fmt: skip
    for argv, message in other:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new").exists()  # a bad range leaves nothing behind


def _point(index: int, level: float, rng: random.Random, spread: float = 0.05, turns: int = 15) -> Point:
    commit = {"commit": f"{index:040x}", "date": "2026-01-01", "subject": f"commit {index}"}
    ratios = tuple(level * rng.lognormvariate(0.0, spread) for _ in range(turns))
    ordered = sorted(ratios)
    return Point((commit,), ratios, ordered[len(ordered) // 2], ordered[3], ordered[-4])


def _series(rng: random.Random, levels: list[float], shift: float) -> list[Point]:
    return [_point(i, level * rng.lognormvariate(0.0, shift), rng) for i, level in enumerate(levels)]


def _found_where_they_are(points: list[Point], starts: list[int]) -> bool:
    """Every step of ``starts`` is found (a false step elsewhere in the series is counted by the null rows)."""
    return {f"commit {i}" for i in starts} <= {s.after.commit["subject"] for s in find_steps(points, "row")}


def test_step_detection_false_alarms_and_power():
    """Measured on simulated series like the stored ones (20 measurements of 15 turns, per-turn spread 5 %, each
    measurement's level moved by a process-level shift of 3 %): under no change about alpha (0.01) of the rows raise
    a false step (measured 7 of 400 with another seed); a 10x step and its fix are always found where they are, a
    1.5x step and its fix with 2 % shifts nearly always (99 of 100)."""
    rng = random.Random(0)
    false_rows = sum(bool(find_steps(_series(rng, [1.0] * 20, 0.03), "null")) for _ in range(200))
    assert false_rows <= 6, false_rows  # 3 % of 200: alpha 0.01 and its chance excess
    step = [1.0] * 8 + [10.0] * 6 + [1.0] * 6
    assert all(_found_where_they_are(_series(rng, step, 0.03), [8, 14]) for _ in range(50))
    step = [1.0] * 8 + [1.5] * 6 + [1.0] * 6
    assert sum(_found_where_they_are(_series(rng, step, 0.02), [8, 14]) for _ in range(50)) >= 45
    # a 5 % change is below the floor: never named, however surely the turns show it
    flat = [_point(i, 1.05 ** (i >= 10), rng, spread=0.001) for i in range(20)]
    assert find_steps(flat, "row") == []
    assert find_steps(flat[:1], "row") == []  # one measurement: nothing to compare
