"""``focalbench plot``: arguments checked first (one line, exit 2), the figures' data, and the files written."""

from __future__ import annotations

import json
import math
import sys

import pytest

from focalbench.arena.registry import get_implementation
from focalbench.bench.plot import (
    FIGURE_1_GAMMAS,
    PlotError,
    accuracy_series,
    figure_1_losses,
    load_documents,
    ratio_series,
    sweep_series,
    write_figures,
)
from focalbench.cli import main


def _row(impl: str, shape_name: str, shape: list[int], median_s: float, baseline_s: float, mode="forward+backward"):
    return {
        "implementation": impl, "device": "cpu", "dtype": "float32", "shape": shape, "shape_name": shape_name,
        "mode": mode, "gamma": 2.0, "median_s": median_s, "iqr_s": median_s / 10, "runs": 5,
        "baseline": "cross_entropy", "baseline_median_s": baseline_s, "ratio_to_baseline": median_s / baseline_s,
        "gbytes_per_s": 1.0, "fraction_of_bandwidth": None, "peak_memory_bytes": None, "compile_s": None,
    }  # fmt: skip


def _speed_report(tmp_path, name="speed.json"):
    rows = []
    for shape_name, shape, base in (("imagenet", [256, 1000], 4e-4), ("sweep_4096x20", [4096, 20], 2e-4),
                                    ("sweep_32768x20", [32768, 20], 1.4e-3)):  # fmt: skip
        rows += [_row("cross_entropy", shape_name, shape, base, base), _row("fused", shape_name, shape, base / 2, base)]
        rows.append(_row("fused", shape_name, shape, base, base, mode="forward"))  # not the plotted mode
    report = {"schema_version": 1, "created": "2026-11-28T00:00:00+00:00", "results": rows, "checks": {},
              "environment": {"device": "cpu", "cpu": "test CPU", "torch": "2.13.0"}}  # fmt: skip
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return path


def _accuracy_report(tmp_path):
    rows = [
        {"implementation": impl, "dtype": "float32", "gap": gap, "max_loss_error": err, "max_grad_error": err / 2,
         "worst": "x"}
        for impl, errors in (("fused", (1e-7, 2e-7)), ("gather", (1e-5, math.inf)))
        for gap, err in zip((0.0, 30.0), errors, strict=True)
    ]  # fmt: skip
    path = tmp_path / "accuracy.json"
    # the accuracy command writes infinities as JSON's Infinity
    path.write_text(json.dumps({"schema_version": 1, "kind": "accuracy", "dtype": "float32", "rows": rows}))
    return path


def test_series_from_a_speed_report(tmp_path):
    documents = load_documents([_speed_report(tmp_path)])
    shapes, series = ratio_series(documents)
    assert shapes == ["imagenet"]
    assert series["fused"]["imagenet"] == pytest.approx((0.5, 0.475, 0.525))  # no interval kept: one IQR
    assert series["cross_entropy"]["imagenet"][0] == 1.0
    sweep = sweep_series(documents)
    assert [p[0] for p in sweep["fused"]] == [4096, 32768]
    assert set(sweep) == {"cross_entropy", "fused"}


def test_several_reports_label_their_series(tmp_path):
    documents = load_documents([_speed_report(tmp_path, "a.json"), _speed_report(tmp_path, "b.json")])
    assert {"fused [a]", "fused [b]"} <= set(ratio_series(documents)[1])


def test_series_from_an_accuracy_report(tmp_path):
    gaps, series, dtype = accuracy_series(load_documents([_accuracy_report(tmp_path)]))
    assert gaps == [0.0, 30.0] and dtype == "float32"
    assert series["fused"] == {0.0: 1e-7, 30.0: 2e-7}
    assert series["gather"][30.0] == math.inf


def test_figure_1_is_computed_by_the_implementations():
    impl = get_implementation("gather")
    p_t = [0.1, 0.5, 0.9]
    losses = figure_1_losses([impl, get_implementation("scatter_mask")], p_t, family="softmax")
    assert set(losses) == {"gather"}  # scatter_mask has no reduction="none": left out, not an error
    for gamma in FIGURE_1_GAMMAS:
        expected = [-((1 - p) ** gamma) * math.log(p) for p in p_t]
        assert losses["gather"][gamma] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("{not json", "not a JSON report"),
        ("[1, 2]", "not a focalbench report"),
        ('{"kind": "soft-gamma", "rows": []}', "report kind must be a speed report (focalbench run) or 'accuracy'. "
         "Got: 'soft-gamma'"),
        ('{"schema_version": 1, "kind": "accuracy", "rows": [{"gap": 1}]}', "accuracy row 0 lacks implementation"),
        ('{"schema_version": 7, "results": []}', "schema version 7"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_before_anything_is_drawn(tmp_path, content, message):
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PlotError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_documents([_speed_report(tmp_path), path])


def test_cli_exits_2_with_one_line(tmp_path, capsys):
    assert main(["plot", str(tmp_path / "missing.json"), "--output", str(tmp_path / "figures")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json: no such file" in err
    assert not (tmp_path / "figures").exists()  # nothing created before the files were checked


def test_without_matplotlib_the_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(PlotError, match=r"pip install 'focalbench\[plot\]'"):
        write_figures([], tmp_path, [get_implementation("gather")], "gather", progress=print, family="softmax")


def test_every_figure_is_written_as_png_and_svg(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    output = tmp_path / "figures"
    assert main(["plot", str(_speed_report(tmp_path)), str(_accuracy_report(tmp_path)), "--output", str(output)]) == 0
    stems = ("speed-ratio", "size-sweep", "accuracy-gap", "focal-figure-1")
    expected = {f"{stem}{suffix}" for stem in stems for suffix in (".png", ".svg")}
    assert {p.name for p in output.iterdir()} == expected
    for stem in stems:
        assert (output / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (output / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    assert capsys.readouterr().out.count("written: ") == 8


def test_figures_a_report_cannot_give_are_skipped_and_figure_1_is_always_drawn(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(_accuracy_report(tmp_path)), "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "speed-ratio: skipped" in captured.err
    assert (tmp_path / "focal-figure-1.png").exists() and (tmp_path / "accuracy-gap.svg").exists()
