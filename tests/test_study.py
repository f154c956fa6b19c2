"""The gate study's injected slowdowns: code that re-registers the implementation, wrapped, computing the same."""

from __future__ import annotations

import subprocess
import sys

import pytest

from focalbench.bench.study import INJECTION, SLOWDOWNS, summary_lines
from focalbench.cli import main


@pytest.mark.parametrize("name", ["uniform-1.3x", "one-shape-2x"])
def test_an_injected_slowdown_wraps_the_implementation_and_keeps_its_values(name):
    slowdown = SLOWDOWNS[name]
    injected = INJECTION.format(impl="fused", factor=slowdown.factor, condition=slowdown.condition)
    code = (
        "import torch, focalbench\n"
        "from focalbench.arena import registry\n"
        "fast = registry.get_implementation('fused')\n"
        "x, t = torch.randn(4, 1000), torch.randint(0, 1000, (4,))\n"
        "expected = fast(x, t)\n" + injected + "\n"
        "slowed = registry.get_implementation('fused')\n"
        "assert slowed is not fast and slowed.fn is _slowed and slowed.capabilities == fast.capabilities\n"
        "assert torch.equal(slowed(x, t), expected)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_the_study_reports_false_alarms_and_catches_with_their_counts():
    document = {"totals": {"unchanged": {"runs": 20, "flagged": 1, "description": "unchanged"},
                           "one-shape-2x": {"runs": 5, "flagged": 5, "description": "one shape"}}}  # fmt: skip
    assert summary_lines(document) == ["unchanged: false alarms 1/20 (unchanged)",
                                       "one-shape-2x: caught 5/5 (one shape)"]  # fmt: skip


def test_the_study_needs_a_clone_of_the_repository(tmp_path, capsys):
    assert main(["gate-study", "--repo", str(tmp_path)]) == 2
    assert "--repo must be a clone of focalbench (with .git and .ci/gate)" in capsys.readouterr().err
    assert main(["gate-study", "--unchanged", "-1"]) == 2
    assert "--unchanged must be >= 0. Got: -1" in capsys.readouterr().err
