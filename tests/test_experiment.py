"""The soft-gamma experiment: task, metrics, paired statistics, a tiny end-to-end run (reproducible bit for bit),
the written report and the command."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from scipy import stats

from focalbench.cli import main, parser
from focalbench.experiments.report import holm, paired_difference, soft_gamma_markdown, write_soft_gamma_report
from focalbench.experiments.soft_gamma import (
    DEFAULT_SEEDS,
    QUICK_SEEDS,
    Budget,
    Task,
    classification_metrics,
    expected_calibration_error,
    inverse_frequency_alpha,
    run_soft_gamma,
    seed_list,
)

SMALL_TASK = Task(train_size=600, test_size=2000)
SMALL_BUDGET = Budget(steps=12, batch_size=64)


def test_task_is_long_tailed_reproducible_and_one_geometry():
    task = Task()
    x_train, y_train, x_test, y_test = task.sample(3)
    assert x_train.shape == (8000, 8) and x_test.shape == (40000, 8) and x_train.dtype == torch.float32
    frequencies = torch.bincount(y_test, minlength=4).double() / len(y_test)
    assert frequencies.tolist() == pytest.approx([0.90, 0.05, 0.03, 0.02], abs=0.01)
    assert torch.bincount(y_test)[3] > 600  # the rarest class is measured on hundreds of points
    again = task.sample(3)
    assert all(torch.equal(a, b) for a, b in zip((x_train, y_train, x_test, y_test), again, strict=True))
    assert not torch.equal(task.sample(4)[0], x_train)
    np.testing.assert_array_equal(task.means(), Task().means())
    distances = np.linalg.norm(task.means(), axis=1)
    assert distances[0] == 0 and distances[1:] == pytest.approx([2.5] * 3)


def test_inverse_frequency_alpha_has_mean_weight_one():
    labels = torch.tensor([0] * 90 + [1] * 5 + [2] * 3 + [3] * 2)
    alpha = inverse_frequency_alpha(labels, 4)
    assert alpha == pytest.approx([100 / 360, 5.0, 100 / 12, 12.5])
    assert float(torch.tensor(alpha)[labels].mean()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"labels must contain every class. Got: counts \[2, 0, 1\]"):
        inverse_frequency_alpha(torch.tensor([0, 0, 2]), 3)


def test_metrics_by_hand():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.2, 0.6], [0.96, 0.02, 0.02], [0.5, 0.3, 0.2]])
    labels = np.array([0, 1, 2, 1, 2])
    m = classification_metrics(probabilities, labels)
    # predictions 0, 1, 2, 0, 0: class 0 recall 1/1, class 1 1/2, class 2 1/2
    assert m["recall"] == [1.0, 0.5, 0.5] and m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx([2 / 4, 2 / 3, 2 / 3]) and m["macro_f1"] == pytest.approx((0.5 + 4 / 3) / 3)
    assert m["accuracy"] == pytest.approx(0.6)
    # bins of width 1/15: 0.7 -> (0.667, 0.733], 0.5 and 0.5 -> (0.467, 0.533], 0.6 -> (0.533, 0.6], 0.96 -> last
    expected = (abs(1 - 0.7) + abs(0.5 - 0.5) * 2 + abs(1 - 0.6) + abs(0 - 0.96)) / 5
    assert m["ece"] == pytest.approx(expected)
    assert expected_calibration_error(np.array([[1.0, 0.0]]), np.array([0])) == 0.0


def test_paired_statistics_match_scipy_and_holm_by_hand():
    differences = [0.03, -0.01, 0.02, 0.05, 0.04, 0.01, 0.02, 0.06]
    result = paired_difference(differences)
    assert result["wilcoxon_p"] == stats.wilcoxon(differences).pvalue
    assert result["mean"] == pytest.approx(np.mean(differences))
    assert result["ci_low"] < result["mean"] < result["ci_high"]
    assert paired_difference(differences) == result  # the bootstrap is seeded
    assert paired_difference([0.0, 0.0, 0.0])["wilcoxon_p"] == 1.0
    assert paired_difference([0.2])["wilcoxon_p"] is None
    assert holm([0.01, 0.02, 0.5]) == pytest.approx([0.03, 0.04, 0.5])
    assert holm([0.04, 0.01]) == pytest.approx([0.04, 0.02])  # monotone: never below an earlier rank's value


def test_seed_list_and_its_messages():
    assert seed_list() == list(range(DEFAULT_SEEDS)) and DEFAULT_SEEDS >= 5
    assert seed_list(quick=True) == list(range(QUICK_SEEDS)) and QUICK_SEEDS >= 3
    assert seed_list(4, quick=True) == [0, 1, 2, 3]
    with pytest.raises(ValueError) as error:
        seed_list(1)
    assert str(error.value) == "seeds must be an integer >= 2 (a paired test needs two seeds at least). Got: 1"
    with pytest.raises(TypeError, match="seeds must be an integer >= 2. Got: float 3.0"):
        seed_list(3.0)
    with pytest.raises(ValueError, match=r"schedules must be a non-empty list without repeats from ce, .*Got: "
                                         r"\['warm'\]"):
        run_soft_gamma([0], schedules=["warm"])
    with pytest.raises(ValueError, match="steps must be an integer >= 3. Got: 2"):
        Budget(steps=2)


@pytest.fixture(scope="module")
def tiny_run() -> tuple[dict, list[str]]:
    lines: list[str] = []
    document = run_soft_gamma([0, 1], task=SMALL_TASK, budget=SMALL_BUDGET, schedules=["gamma2", "step", "linear"],
                              alphas=["none", "inverse-frequency"], progress=lines.append)  # fmt: skip
    return document, lines


def test_tiny_run_report_structure(tiny_run):
    document, lines = tiny_run
    assert document["kind"] == "soft-gamma" and document["schema_version"] == 1
    assert {"torch", "cpu", "threads", "git_commit"} <= set(document["environment"])
    assert document["environment"]["threads"] == document["settings"]["threads"] == 1
    settings = document["settings"]
    assert settings["seeds"] == [0, 1] and settings["reference"] == "gamma2"
    assert settings["schedules"]["step"] == {"kind": "step", "last_step": 0,
                                             "config": {"milestones": [4, 8], "gammas": [0.0, 1.0, 2.0]}}  # fmt: skip
    rows = document["results"]
    assert len(rows) == len(lines) == 2 * 2 * 3
    assert "[12/12] seed 1 alpha=inverse-frequency schedule=linear" in lines[-1]
    for row in rows:
        assert {"schedule", "alpha", "seed", "metrics", "final_gamma", "schedule_state"} <= set(row)
        assert row["schedule_state"]["last_step"] == SMALL_BUDGET.steps and row["final_gamma"] == 2.0
        assert len(row["metrics"]["recall"]) == 4 and 0 <= row["metrics"]["ece"] <= 1
        assert (row["alpha_values"] is None) == (row["alpha"] == "none")
    summary = {(s["alpha"], s["schedule"]): s for s in document["summary"]}
    assert len(summary) == 6 and all(s["runs"] == 2 for s in summary.values())
    paired = document["paired"]
    assert len(paired) == 2 * 2 * 3  # (alpha) x (step, linear) x 3 metrics
    assert all(c["reference"] == "gamma2" and c["pairs"] == 2 and c["holm_p"] >= c["wilcoxon_p"] for c in paired)
    json.dumps(document, allow_nan=False)  # strict JSON


def test_tiny_run_is_bit_identical_on_rerun(tiny_run):
    document, _ = tiny_run
    threads = torch.get_num_threads()
    condition = {"schedules": ["linear"], "alphas": ["inverse-frequency"]}
    again = run_soft_gamma([1], task=SMALL_TASK, budget=SMALL_BUDGET, **condition)
    (row,) = again["results"]
    (first,) = [
        r for r in document["results"] if (r["seed"], r["schedule"], r["alpha"]) == (1, "linear", "inverse-frequency")
    ]
    assert row["metrics"] == first["metrics"] and row["final_train_loss"] == first["final_train_loss"]
    assert torch.get_num_threads() == threads  # the run's single thread is not left behind
    assert again["paired"] == [] and "| linear " in soft_gamma_markdown(again)  # no reference run: nothing paired


def test_report_is_written_never_overwritten(tiny_run, tmp_path):
    document, _ = tiny_run
    json_path, md_path = write_soft_gamma_report(document, tmp_path)
    second, _ = write_soft_gamma_report(document, tmp_path)
    assert json_path.name.startswith("soft-gamma-cpu-") and second != json_path
    assert json.loads(json_path.read_text())["results"] == document["results"]
    markdown = md_path.read_text()
    assert markdown == soft_gamma_markdown(document)
    for text in ("## Mean ± std over 2 seeds", "### alpha = inverse-frequency", "Wilcoxon", "Holm p", "| step ",
                 "Seeds (2): 0, 1", "Beyond noise: "):  # fmt: skip
        assert text in markdown


def test_the_command(monkeypatch, tmp_path, capsys):
    small = functools.partial(run_soft_gamma, task=SMALL_TASK, budget=SMALL_BUDGET, schedules=["gamma2", "ce"])
    monkeypatch.setattr("focalbench.experiments.soft_gamma.run_soft_gamma", small)
    assert main(["experiment", "soft-gamma", "--seeds", "2", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count(" alpha=") == 2 * 2 * 2 and "paired differences against gamma2" in captured.out
    (path,) = tmp_path.glob("soft-gamma-cpu-*.json")
    assert json.loads(path.read_text())["settings"]["seeds"] == [0, 1]
    assert main(["experiment", "soft-gamma", "--seeds", "1"]) == 2
    assert "focalbench experiment: --seeds must be an integer >= 2" in capsys.readouterr().err


def test_command_help_states_the_module_defaults():
    subparsers = next(a for a in parser()._actions if a.dest == "command")
    text = " ".join(subparsers.choices["experiment"].format_help().split())
    from focalbench.experiments import detection, long_tail

    assert f"soft-gamma {DEFAULT_SEEDS} (quick {QUICK_SEEDS})" in text
    assert f"long-tail {long_tail.DEFAULT_SEEDS} (quick {long_tail.QUICK_SEEDS})" in text
    assert f"detection {detection.DEFAULT_SEEDS} (quick {detection.QUICK_SEEDS})" in text
