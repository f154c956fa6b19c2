"""focalbench gate's measuring loop, on scripted measurements: a regression must show twice, a refusal is an error,
a flag never disproved fails, a machine too busy to time gives no verdict."""

from __future__ import annotations

import pytest

import focalbench.bench.gate as gate_module
import focalbench.bench.gated as gated_module
import focalbench.bench.report as report_module
from focalbench.bench.environment import environment
from focalbench.bench.gate import AllUnreliable, Change, GateError
from focalbench.bench.gated import Verdict, baseline_path, plan
from focalbench.cli import main

SLOW = Change(("sigmoid", "sigmoid_fused", "retinanet_rows", "float32", "forward+backward"), 0.4, 1.5, 1e-8, None,
              2.0, 1e-7)  # fmt: skip
MEAN = Change(("softmax", "fused", "geometric mean", "", ""), 0.6, 0.8, 1e-6, None, -float("inf"), 1e-5)
FINE = Change(("softmax", "fused", "coco_rows", "float32", "forward+backward"), 1.0, 1.02, 0.4, None, -0.1, 1.0)
NOISY = Change(("softmax", "fused", "imagenet", "float32", "forward+backward"), 0.9, 1.1, 0.2, "IQR/median 0.4", -0.3)


def _verdict(*regressions: Change, unreliable: bool = False) -> Verdict:
    changes = [FINE, NOISY] if unreliable else [FINE]
    return Verdict(changes + [c for c in regressions if c is not MEAN], [MEAN], list(regressions), [],
                   {"softmax": "cross_entropy", "sigmoid": "bce_with_logits"})  # fmt: skip


@pytest.fixture()
def scripted(monkeypatch, tmp_path):
    """Baseline mode on fake baselines; each measurement's outcome taken in turn from the list the test sets."""
    fingerprint = environment("cpu")["machine_fingerprint"]
    for rows in plan()[0]:
        path = baseline_path(tmp_path, rows.family, fingerprint)
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    outcomes: list = []
    calls = []

    def compare_all(pairs, *args, **kwargs):
        calls.append(1)
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(gated_module, "measure", lambda gated, **kwargs: {g.family: {} for g in gated})
    monkeypatch.setattr(gated_module, "compare_all", compare_all)
    monkeypatch.setattr(report_module, "read_report", lambda path: {})
    monkeypatch.setattr(gate_module, "comparable", lambda old, new: None)
    return outcomes, calls, ["gate", "--root", str(tmp_path), "--mode", "baseline"]


def test_a_regression_flagged_twice_fails_naming_the_row(scripted, capsys):
    outcomes, calls, argv = scripted
    outcomes += [_verdict(SLOW), _verdict(SLOW)]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "REGRESSION sigmoid / sigmoid_fused / retinanet_rows / float32 / forward+backward: ratio to " in out
    assert "gate: FAILED: 1 row(s) regressed, measured twice" in out and len(calls) == 2


def test_a_mean_flagged_twice_is_confirmed_whatever_rows_it_spans(scripted, capsys):
    outcomes, _, argv = scripted
    outcomes += [_verdict(MEAN, unreliable=True), _verdict(MEAN)]
    assert main(argv) == 1
    assert "REGRESSION softmax / fused / geometric mean" in capsys.readouterr().out


def test_a_flag_the_next_measurement_does_not_repeat_passes(scripted, capsys):
    outcomes, calls, argv = scripted
    outcomes += [_verdict(SLOW), _verdict()]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "did not show again" in captured.err and "gate: passed" in captured.out and len(calls) == 2


def test_a_flag_never_disproved_fails(scripted, capsys):
    outcomes, calls, argv = scripted
    outcomes += [_verdict(SLOW), *[AllUnreliable("every compared row is unreliable (8): re-measure")] * 3]
    assert main(argv) == 1
    assert "flagged and never disproved" in capsys.readouterr().out and len(calls) == 4


def test_a_refusal_is_an_error_not_a_pass(scripted, capsys):
    outcomes, calls, argv = scripted
    outcomes += [GateError("softmax: the reports must share timing rows. Got: none in both")]
    assert main(argv) == 2
    assert "the reports must share timing rows" in capsys.readouterr().err and len(calls) == 1


def test_unreliable_rows_are_measured_again_then_not_judged(scripted, capsys):
    outcomes, calls, argv = scripted
    outcomes += [_verdict(unreliable=True)] * 3
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "NOT JUDGED softmax / fused / imagenet" in out and "1 row(s) unreliable 3 times, not judged" in out
    assert len(calls) == 3
    outcomes += [AllUnreliable("every compared row is unreliable (8): re-measure")] * 3
    assert main(argv) == 0
    assert "gate: NOT JUDGED: every row was unreliable 3 times" in capsys.readouterr().out


def test_record_refuses_a_users_implementation(capsys):
    assert main(["gate", "--record", "5", "--impl", "gather", "--family", "softmax"]) == 2
    assert "--record writes the products' baselines: it takes no --impl" in capsys.readouterr().err
    assert main(["gate", "--record", "0"]) == 2
    assert "--record must be >= 1. Got: 0" in capsys.readouterr().err
