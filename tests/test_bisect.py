"""focalbench bisect on a repository made here: a loss that becomes slower at a known commit is found there."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from focalbench.bench.bisect import BisectError, Row, bisect, commit_range


@pytest.fixture(scope="module")
def history(toy_history):
    """A package `toyloss` over five commits: fast, fast, SLOW (the third), slow, slow."""
    return toy_history([False, False, True, True, True])


def test_bisect_refuses_a_range_whose_end_is_not_slower(history, tmp_path, monkeypatch):
    repo, commits = history
    monkeypatch.chdir(repo)
    with pytest.raises(BisectError, match="not slower at .* nothing to bisect"):
        bisect(Row("softmax", "toyloss:loss", "4096x20"), commits[0], commits[1], tmp_path, pairs=1, rounds=7)


def test_bisect_refuses_a_good_commit_after_the_bad_one_and_an_unknown_shape(history, tmp_path, monkeypatch):
    repo, commits = history
    monkeypatch.chdir(repo)
    with pytest.raises(BisectError, match="--good must be an ancestor of --bad"):
        commit_range(commits[3], commits[1])
    with pytest.raises(BisectError, match="--good and --bad must differ"):
        commit_range(commits[1], commits[1])
    with pytest.raises(BisectError, match="shape must be one of yolov2_voc"):
        bisect(Row("softmax", "toyloss:loss", "huge"), commits[0], commits[1], tmp_path)


def test_bisect_names_the_commit_that_made_the_row_slower(history, monkeypatch):
    repo, commits = history
    monkeypatch.chdir(repo)
    run = [sys.executable, "-m", "focalbench.cli", "bisect", "--family", "softmax", "--good", commits[0], "--bad",
           commits[4], "--impl", "toyloss:loss", "--shape", "4096x20", "--pairs", "1", "--rounds", "11"]  # fmt: skip
    result = subprocess.run(run, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"first bad commit: {commits[2]} version 2" in result.stdout, result.stdout
    # the bad end first, then a binary search over the 3 commits before it: 2 more steps
    assert "3 step(s) over 4 commit(s)" in result.stdout, result.stdout
    verdicts = re.findall(r"^  (\w{10}) (BAD|good) ", result.stdout, re.M)
    assert verdicts == [(commits[4][:10], "BAD"), (commits[2][:10], "BAD"), (commits[1][:10], "good")], result.stdout
    refused = subprocess.run([*run[:-4], "--pairs", "0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--pairs must be >= 1. Got: 0" in refused.stderr


def test_bisect_asks_the_family_of_a_users_callable(history, monkeypatch, capsys):
    """No family is assumed: a module:attr needs --family (a family's own product does not)."""
    from focalbench.cli import main

    repo, commits = history
    monkeypatch.chdir(repo)
    assert main(["bisect", "--good", commits[0], "--bad", commits[1], "--impl", "toyloss:loss", "--shape",
                 "4096x20"]) == 2  # fmt: skip
    from focalbench.arena.family import families

    named = ", ".join(families())
    assert f"--family must name the family of toyloss:loss (one of {named}): no family is assumed" in (
        capsys.readouterr().err
    )
