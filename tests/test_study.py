"""The gate study's injected slowdowns: code that re-registers the implementation, wrapped, computing the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

from focalbench.bench.study import INJECTION, slowdowns, summary_lines
from focalbench.cli import main


@pytest.mark.parametrize("family", ["softmax", "sigmoid"])
@pytest.mark.parametrize("name", ["uniform-1.3x", "one-shape-2x"])
def test_an_injected_slowdown_wraps_the_implementation_and_keeps_its_values(family, name):
    from focalbench.arena.family import get_family

    record = get_family(family)
    impl = record.recommended
    slowdown = slowdowns(family)[name]
    last = [s for s in record.workload.shapes if not s.sweep][-1]
    injected = INJECTION.format(impl=impl, factor=slowdown.factor, condition=slowdown.condition)
    code = (
        "import time, torch, focalbench\n"
        "from focalbench.arena import registry\n"
        "from focalbench.arena.family import get_family\n"
        f"fast = registry.get_implementation({impl!r})\n"
        f"workload = get_family({family!r}).workload\n"
        "x, t = workload.inputs(workload.shapes[0], torch.float32, 'cpu')\n"
        "expected = fast(x, t)\n" + injected + "\n"
        f"slowed = registry.get_implementation({impl!r})\n"
        "assert slowed is not fast and slowed.fn is _slowed and slowed.capabilities == fast.capabilities\n"
        "assert torch.equal(slowed(x, t), expected)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
    # the one-shape slowdown applies at the family's last representative shape and nowhere else
    assert slowdown.condition == ("True" if name == "uniform-1.3x" else f"tuple(logits.shape) == {tuple(last.shape)!r}")


def test_the_study_reports_false_alarms_and_catches_with_their_counts():
    document = {"totals": {"unchanged": {"runs": 20, "flagged": 1, "factor": 1.0, "description": "unchanged"},
                           "one-shape-2x": {"runs": 5, "flagged": 5, "named": 4, "factor": 2.0,
                                            "description": "one shape"}}}  # fmt: skip
    assert summary_lines(document) == [
        "unchanged: false alarms 1/20 (unchanged)",
        "one-shape-2x: caught 5/5, naming the slowed family's rows 4/5 (one shape)",
    ]


def test_the_study_needs_a_clone_of_the_repository(tmp_path, capsys):
    assert main(["gate-study", "--repo", str(tmp_path)]) == 2
    assert "--repo must be a clone of focalbench (with .git and .ci/gate)" in capsys.readouterr().err
    assert main(["gate-study", "--unchanged", "-1"]) == 2
    assert "--unchanged must be >= 0. Got: -1" in capsys.readouterr().err
