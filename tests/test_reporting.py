"""Statistics, the report format, the gate and the command line, end to end on small inputs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from focalbench.bench.gate import compare_reports, merge_reports
from focalbench.bench.report import (
    REQUIRED_ROW_KEYS,
    SCHEMA_VERSION,
    ReportError,
    read_report,
    results_table,
    write_report,
)
from focalbench.bench.stats import quantile, summarize
from focalbench.cli import main


def test_statistics_match_numpy():
    samples = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6]
    s = summarize(samples)
    assert s.median == np.median(samples) and s.runs == 6 and s.minimum == 1.0
    assert s.iqr == pytest.approx(np.percentile(samples, 75) - np.percentile(samples, 25))
    assert quantile([5.0], 0.3) == 5.0
    with pytest.raises(ValueError, match="values must be non-empty"):
        quantile([], 0.5)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    """A real (tiny) report from `focalbench run`."""
    out = tmp_path_factory.mktemp("reports")
    code = main(["run", "--impl", "fused", "--impl", "gather", "--shape", "512x7", "--shape", "2x5x4x4",
                 "--rounds", "3", "--skip-checks", "--output", str(out)])  # fmt: skip
    assert code == 0
    (path,) = out.glob("focalbench-cpu-*.json")
    return read_report(path)


def test_run_writes_a_self_describing_report(report):
    assert report["schema_version"] == SCHEMA_VERSION
    assert {"python", "torch", "numpy", "platform", "cpu", "threads", "device", "device_name", "cuda", "git_commit",
            "bandwidth_gbps", "product_source"} <= set(report["environment"])  # fmt: skip
    rows = report["results"]
    assert {r["implementation"] for r in rows} == {"cross_entropy", "fused", "gather"}
    assert all(set(REQUIRED_ROW_KEYS) <= set(r) for r in rows)
    # 3 rounds asked for; an uncertain row gets up to twice as many more
    assert all(3 <= r["runs"] <= 9 and r["median_s"] > 0 and r["peak_memory_bytes"] >= 0 for r in rows)
    assert all(len(r["samples_s"]) == len(r["baseline_samples_s"]) == r["runs"] for r in rows)  # every sample kept
    assert all(r["ratio_interval"][0] <= r["ratio_to_baseline"] <= r["ratio_interval"][1] for r in rows)
    assert all(r["unreliable"] is None or "spans" in r["unreliable"] or "ratios IQR" in r["unreliable"] for r in rows)
    base = [r for r in rows if r["implementation"] == "cross_entropy"]
    assert all(r["ratio_to_baseline"] == 1.0 and r["ratio_interval"] == [1.0, 1.0] for r in base)


def test_reports_are_never_overwritten(report, tmp_path):
    first, _ = write_report(report, tmp_path)
    second, _ = write_report(report, tmp_path)
    assert first != second and first.exists() and second.exists()
    assert len(list(tmp_path.glob("*.json"))) == 2 and not list(tmp_path.glob(".tmp-*"))


def _measured(report: dict, factors: dict | None = None, rounds: int = 9, seed: int = 0) -> dict:
    """``report`` with synthetic, reliable samples: each row's baseline about 1 ms, each implementation's about its
    ratio times that, with 2 % noise drawn from ``seed``; ``factors`` ``{(implementation, shape name, mode): f}``
    slows those rows f times (their samples, as a slower kernel would)."""
    rng = np.random.default_rng(seed)
    other = copy.deepcopy(report)
    for row in other["results"]:
        base = list(1e-3 * (1 + 0.02 * rng.standard_normal(rounds)))
        factor = (factors or {}).get((row["implementation"], row["shape_name"], row["mode"]), 1.0)
        ratio = 1.0 if row["implementation"] == row["baseline"] else 0.8 + 0.1 * len(row["shape_name"]) % 3
        row["baseline_samples_s"] = base
        row["samples_s"] = [b * ratio * factor * (1 + 0.02 * rng.standard_normal()) for b in base]
        row["runs"], row["unreliable"] = rounds, None
    return other


def _save(tmp_path, name, data) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_gate_passes_unchanged_code_and_flags_one_row_whose_samples_doubled(report, tmp_path, capsys):
    fused = [(r["shape_name"], r["mode"]) for r in report["results"] if r["implementation"] == "fused"]
    old, same = _measured(report, seed=1), _measured(report, seed=2)  # two runs of unchanged code: other noise
    slower = _measured(report, {("fused", *fused[0]): 2.0}, seed=2)
    base, unchanged, slow = (_save(tmp_path, n, d) for n, d in (("a.json", old), ("b.json", same), ("c.json", slower)))
    assert main(["compare", base, unchanged]) == 0
    assert "no regression beyond 50% in" in capsys.readouterr().out
    assert main(["compare", base, slow]) == 1
    out = capsys.readouterr().out
    assert f"REGRESSION fused / {fused[0][0]} / float32 / {fused[0][1]} / gamma 2.0: ratio to cross_entropy" in out
    assert "p = " in out and "REGRESSION gather" not in out
    assert compare_reports(old, slower, 1.5).exit_code == 0  # +100% is within a 150% allowance


def test_a_uniform_small_slowdown_is_caught_by_the_mean_and_not_by_one_row(report):
    rows = [(r["implementation"], r["shape_name"], r["mode"]) for r in report["results"]
            if r["implementation"] == "fused"]  # fmt: skip
    slower = compare_reports(_measured(report, seed=1), _measured(report, dict.fromkeys(rows, 1.3), seed=2), 0.5)
    assert [c.key[1] for c in slower.regressions] == ["geometric mean"]
    assert slower.regressions[0].p_value < 1e-3


def test_an_unreliable_row_is_neither_a_pass_nor_a_regression(report, tmp_path, capsys):
    old, new = _measured(report, seed=1), _measured(report, seed=2)
    row = next(r for r in new["results"] if r["implementation"] == "fused")
    rng = np.random.default_rng(3)
    # noisy and maybe 1.5x slower: its interval reaches below the allowance, so no verdict either way
    row["samples_s"] = [s * 1.5 * rng.uniform(0.5, 1.6) for s in row["samples_s"]]
    row["unreliable"] = "ratio interval 0.5-3 spans x6.00"
    comparison = compare_reports(old, new, 0.5)
    assert comparison.unreliable and row["shape_name"] not in {c.key[1] for c in comparison.regressions}
    assert main(["compare", _save(tmp_path, "a.json", old), _save(tmp_path, "b.json", new)]) == 0
    out = capsys.readouterr().out
    assert f"UNRELIABLE fused / {row['shape_name']}" in out and "re-measure" in out and "1 unreliable" in out
    for other in new["results"]:
        other["unreliable"] = "IQR/median 0.80"
    assert main(["compare", _save(tmp_path, "a.json", old), _save(tmp_path, "c.json", new)]) == 2
    assert "every compared row is unreliable" in capsys.readouterr().err


def test_a_row_far_slower_is_a_regression_however_noisy_its_samples(report, tmp_path, capsys):
    """0.64 -> 1.82 with a noisy run is not "unreliable": even the favourable end of its interval is beyond +50 %."""
    old, new = _measured(report, seed=1), _measured(report, seed=2)
    rng = np.random.default_rng(4)
    row = next(r for r in new["results"] if r["implementation"] == "fused")
    row["samples_s"] = [s * 2.8 * rng.uniform(0.8, 1.35) for s in row["samples_s"]]  # 2.8x, scattered by -20..+35 %
    row["unreliable"] = "per-round ratios IQR/median 0.30"
    assert main(["compare", _save(tmp_path, "a.json", old), _save(tmp_path, "b.json", new)]) == 1
    out = capsys.readouterr().out
    gamma = row["parameters"]["gamma"]
    assert f"REGRESSION fused / {row['shape_name']} / float32 / {row['mode']} / gamma {gamma!r}" in out
    assert "noisy (new: per-round ratios IQR/median 0.30), yet its interval's favourable end is +" in out
    assert f"UNRELIABLE fused / {row['shape_name']}" not in out
    # the noisy baseline run of the report in issue: a row judged against a noisy old run is judged all the same
    old_row = next(r for r in old["results"] if r["implementation"] == "fused" and r["shape_name"] == row["shape_name"]
                   and r["mode"] == row["mode"])  # fmt: skip
    old_row["baseline_samples_s"] = [b * rng.uniform(0.85, 1.2) for b in old_row["baseline_samples_s"]]
    old_row["unreliable"] = "ratio interval 0.6-0.8 spans x1.33"
    assert compare_reports(old, new, 0.5).exit_code == 1


def test_more_rows_do_not_mean_more_false_alarms(report):
    """Holm over every tested row and mean: 40 rows of unchanged code whose p-values would each pass alone at 1 %
    once in a hundred are judged as one family; a real 2x row among them is still caught."""
    from focalbench.bench.gate import Change, judge

    rows = [Change(("fused", f"s{i}", "float32", "fb"), 1.0, 1.6, 0.004, None, 0.1) for i in range(40)]
    _, _, regressions = judge(rows, [], 0.5, 0.2, 0.01)
    assert regressions == []  # alone, each p = 0.004 < 0.01 and +60 % would be a regression
    _, _, alone = judge(rows[:1], [], 0.5, 0.2, 0.01)
    assert len(alone) == 1
    real = Change(("fused", "big", "float32", "fb"), 1.0, 2.0, 1e-6, None, 0.7)
    _, _, regressions = judge([*rows, real], [], 0.5, 0.2, 0.01)
    assert [c.key[1] for c in regressions] == ["big"]


def test_compare_refuses_what_it_cannot_judge(report, tmp_path, capsys):
    base = _save(tmp_path, "a.json", report)
    empty = _save(tmp_path, "empty.json", {**report, "results": []})
    assert main(["compare", base, empty]) == 2
    assert "the reports must share timing rows. Got: none in both" in capsys.readouterr().err
    other_gamma = copy.deepcopy(report)  # the same rows timed at another gamma are other measurements
    for row in other_gamma["results"]:
        row["parameters"] = {"gamma": 0.5}
    assert main(["compare", base, _save(tmp_path, "g.json", other_gamma)]) == 2
    assert "the reports must share timing rows. Got: none in both" in capsys.readouterr().err
    sigmoid = copy.deepcopy(report)
    sigmoid["settings"]["family"] = "sigmoid"
    assert main(["compare", base, _save(tmp_path, "s.json", sigmoid)]) == 2
    assert "the reports must time one loss family. Got: softmax and sigmoid" in capsys.readouterr().err
    other = copy.deepcopy(report)
    for row in other["results"]:
        row["baseline"] = "nll_loss"
    assert main(["compare", base, _save(tmp_path, "o.json", other)]) == 2
    assert "the reports must time against one baseline" in capsys.readouterr().err


def test_gate_flags_a_check_that_broke(report):
    old, new = _measured(report, seed=1), _measured(report, seed=2)
    old["checks"] = {"fused": {"matches_reference": "pass"}}
    new["checks"] = {"fused": {"matches_reference": "fail"}}
    comparison = compare_reports(old, new, 0.5)
    assert comparison.exit_code == 1 and comparison.broken_checks == [("fused", "matches_reference", "pass", "fail")]
    new["checks"] = {"fused": {"matches_reference": "xfail"}}  # a declared defect: reported by check, not a break
    assert compare_reports(old, new, 0.5).exit_code == 0
    new["checks"] = {"fused": {"matches_reference": "xpass"}}
    assert compare_reports(old, new, 0.5).exit_code == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("not json", "not a JSON report"),
        ('{"a": 1}', "not a focalbench report"),
        ('{"schema_version": 99, "results": []}', "schema version 99"),
        ('{"schema_version": 1, "results": [{"implementation": "x"}]}', "result row 0 lacks"),
        ('{"schema_version": 1, "results": 5}', "results must be a list of rows. Got: int"),
        ('{"schema_version": 1, "results": [1]}', "result row 0 must be an object. Got: 1"),
        ('{"schema_version": 1, "results": [], "checks": []}', "checks must be an object. Got: list"),
        ("RATIO:null", "ratio_to_baseline must be a finite number > 0. Got: None"),
        ("RATIO:0", "ratio_to_baseline must be a finite number > 0. Got: 0"),
        ("RATIO:-1.5", "ratio_to_baseline must be a finite number > 0. Got: -1.5"),
    ],
)
def test_unusable_files_exit_2_with_one_line(report, tmp_path, capsys, content, message):
    good = _save(tmp_path, "good.json", report)
    bad = tmp_path / "bad.json"
    if content is not None and content.startswith("RATIO:"):
        broken = copy.deepcopy(report)
        broken["results"][1]["ratio_to_baseline"] = json.loads(content.partition(":")[2])
        content = json.dumps(broken)
        message = message.replace("result row", "result row 1")
    if content is not None:
        bad.write_text(content)
    with pytest.raises(ReportError, match=message):
        read_report(bad)
    assert main(["compare", good, str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_merge_takes_per_row_medians_of_reports_without_samples(report):
    copies = [copy.deepcopy(report) for _ in range(3)]
    for factor, rep in zip((1.0, 3.0, 2.0), copies, strict=True):
        for row in rep["results"]:
            row["ratio_to_baseline"] = factor
            del row["samples_s"], row["baseline_samples_s"]
    merged = merge_reports(copies)
    assert {r["ratio_to_baseline"] for r in merged["results"]} == {2.0}
    assert merged["settings"]["merged_from"] == 3


def test_merge_pools_the_samples_of_every_run(report):
    runs = [_measured(report, seed=seed) for seed in range(3)]
    merged = merge_reports(runs)
    for row in merged["results"]:
        same = ("implementation", "shape_name", "mode", "dtype")
        pooled = [s for run in runs for r in run["results"] if all(r[k] == row[k] for k in same)
                  for s in r["samples_s"]]  # fmt: skip
        assert row["samples_s"] == pooled and len(row["baseline_samples_s"]) == row["runs"] == 27
        assert row["ratio_interval"][0] <= row["ratio_to_baseline"] <= row["ratio_interval"][1]


def test_cuda_without_a_gpu_is_a_clear_exit_2(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["run", "--device", "cuda"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


def test_list_and_check_commands(capsys):
    assert main(["list"]) == 0
    assert "numpy_reference" in capsys.readouterr().out
    assert main(["check", "fused", "--check", "rejects_bad_input", "--check", "paper_figure_1"]) == 0
    assert "pass" in capsys.readouterr().out


def test_check_of_a_users_broken_loss_exits_1(monkeypatch, capsys):
    import sys
    import types

    import torch

    def clamps_and_logs(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        p = torch.softmax(logits, 1).gather(1, target.unsqueeze(1)).squeeze(1)
        return (-((1 - p) ** gamma) * p.clamp_min(1e-7).log()).mean()

    module = types.ModuleType("users_focal")
    module.loss = clamps_and_logs
    monkeypatch.setitem(sys.modules, "users_focal", module)
    assert main(["check", "users_focal:loss", "--family", "softmax", "--check", "matches_reference"]) == 1
    assert "unexpected outcome" in capsys.readouterr().out


def test_unknown_names_are_usage_errors(capsys):
    assert main(["check", "no_such_impl"]) == 2
    assert "implementation must be one of" in capsys.readouterr().err
    assert main(["run", "--shape", "wide", "--skip-checks"]) == 2
    assert "shape must be one of" in capsys.readouterr().err


def _on_other_machine(report: dict, **environment) -> dict:
    other = copy.deepcopy(report)
    other["environment"].update(environment)
    return other


def test_the_gate_never_compares_machine_kinds(report, tmp_path, capsys):
    """Different fingerprints or kernel builds: exit 2 and one line, unless --same-machine says otherwise."""
    env = report["environment"]
    assert env["machine_fingerprint"].startswith(f"{env['isa']}-{env['threads']}t-")
    assert env["kernel_build"]["target"] in ("native", "x86-64-v2", "x86-64-v3", "x86-64-v4", "generic")
    report = _measured(report)  # reliable samples: what is tested here is the refusal
    base = _save(tmp_path, "base.json", report)
    for name, other in (
        ("avx2.json", _on_other_machine(report, machine_fingerprint="avx2-2t-0123456789", isa="avx2")),
        ("v3.json", _on_other_machine(report, kernel_build={"target": "x86-64-v3", "flags": "-march=x86-64-v3"})),
        ("old.json", _on_other_machine(report, machine_fingerprint=None)),
    ):
        path = _save(tmp_path, name, other)
        assert main(["compare", base, path]) == 2
        err = capsys.readouterr().err.strip()
        assert "refusing to gate across machines" in err and len(err.splitlines()) == 1
        assert main(["compare", base, path, "--same-machine"]) == 0
        capsys.readouterr()
    with pytest.raises(ValueError, match="one machine kind"):
        merge_reports([report, _on_other_machine(report, machine_fingerprint="x")])


def test_the_gate_can_be_limited_to_the_recommended_implementation(report, tmp_path, capsys):
    gather = {("gather", r["shape_name"], r["mode"]): 3.0 for r in report["results"]}
    base = _save(tmp_path, "a.json", _measured(report, seed=1))
    slow = _save(tmp_path, "b.json", _measured(report, gather, seed=2))
    assert main(["compare", base, slow]) == 1
    assert main(["compare", base, slow, "--impl", "fused"]) == 0
    assert main(["compare", base, slow, "--impl", "nothing"]) == 2
    assert "the reports must share timing rows of nothing. Got: none in both" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "inf", "-0.1"])
def test_max_slowdown_must_be_a_finite_number(report, tmp_path, capsys, value):
    base = _save(tmp_path, "a.json", report)
    assert main(["compare", base, base, f"--max-slowdown={value}"]) == 2
    assert "--max-slowdown must be a finite number >= 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "--rounds must be >= 1. Got: 0"),
        (["--rounds", "-3"], "--rounds must be >= 1. Got: -3"),
        (["--gamma", "-1"], "--gamma must be a finite number >= 0. Got: -1.0"),
        (["--gamma", "nan"], "--gamma must be a finite number >= 0. Got: nan"),
        (["--param", "gamma=-2"], "--param gamma must be a finite number >= 0. Got: -2"),
        (["--param", "gamma"], "--param must be NAME=VALUE. Got: 'gamma'"),
        (["--param", "beta=1"], "--param beta: the softmax family's timed parameters are gamma. Got: 'beta'"),
        (["--shape", "4x1"], "classes >= 2). Got: '4x1'"),
        (["--output", "/dev/null/reports"], "--output must be a writable directory. Got: /dev/null/reports"),
    ],
)
def test_run_refuses_bad_arguments_before_measuring(monkeypatch, capsys, argv, message):
    import focalbench.bench.runner
    import focalbench.bench.timing

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before validating")

    monkeypatch.setattr(focalbench.bench.runner, "run_case", no_measuring)
    monkeypatch.setattr(focalbench.bench.timing, "copy_bandwidth", no_measuring)
    assert main(["run", "--skip-checks", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_rows_report_time_per_logit_the_exp_floor_and_a_copy(report):
    for row in report["results"]:
        numel = 1
        for d in row["shape"]:
            numel *= d
        assert row["floor"] == "exp_floor" and row["floor_median_s"] > 0 and row["copy_median_s"] > 0
        assert row["ns_per_logit"] == pytest.approx(row["median_s"] / numel * 1e9)
        assert row["ratio_to_floor"] == pytest.approx(row["median_s"] / row["floor_median_s"])
        assert row["floor_ns_per_logit"] == pytest.approx(row["floor_median_s"] / numel * 1e9)
        assert row["copy_ns_per_logit"] == pytest.approx(row["copy_median_s"] / numel * 1e9)
    table = results_table(report["results"])
    assert "exp ns/logit" in table and "copy ns/logit" in table


def test_reports_without_samples_are_judged_by_the_ratio_alone(report):
    """Reports from before the samples were kept: the geometric mean against the allowance, one row against three
    times it. Unchanged code on a shared machine: one shape +55 %, another -40 % (seen here): no regression."""
    bare = copy.deepcopy(report)
    for row in bare["results"]:
        del row["samples_s"], row["baseline_samples_s"]
        row["unreliable"] = None

    def scaled(factors: dict) -> dict:
        other = copy.deepcopy(bare)
        for row in other["results"]:
            if row["implementation"] == "fused":
                row["ratio_to_baseline"] *= factors.get(row["shape_name"], 1.0)
        return other

    report = bare

    shapes = sorted({r["shape_name"] for r in report["results"] if r["implementation"] == "fused"})
    noisy = compare_reports(report, scaled({shapes[0]: 1.55, shapes[1]: 0.6}), 0.5, ["fused"])
    assert noisy.exit_code == 0 and noisy.summaries[0].change < 0.5
    assert compare_reports(report, scaled(dict.fromkeys(shapes, 2.0)), 0.5, ["fused"]).exit_code == 1
    one_shape = compare_reports(report, scaled({shapes[0]: 3.0}), 0.5, ["fused"])
    assert one_shape.exit_code == 1 and any(r.key[1] == shapes[0] for r in one_shape.regressions)


def test_the_gate_judges_every_family_in_one_verdict_naming_each_regressed_row(report):
    """Two families' rows judged together: one slowed row of each is named, unchanged rows pass, and a family whose
    rows all went unreliable is judged with the others rather than refusing the run."""
    from focalbench.bench.gated import compare_all

    def as_family(document: dict, family: str) -> dict:
        other = copy.deepcopy(document)
        other["settings"]["family"] = family
        return other

    fused = [(r["shape_name"], r["mode"]) for r in report["results"] if r["implementation"] == "fused"]
    slowed = {("fused", *fused[0]): 2.0}
    pairs = {
        "softmax": (_measured(report, seed=1), _measured(report, slowed, seed=2)),
        "sigmoid": (as_family(_measured(report, seed=3), "sigmoid"),
                    as_family(_measured(report, {("fused", *fused[-1]): 2.0}, seed=4), "sigmoid")),
    }  # fmt: skip
    verdict = compare_all(pairs, 0.5, 0.2, {"softmax": "fused", "sigmoid": "fused"})
    named = {(c.key[0], c.key[2]) for c in verdict.regressions if "geometric mean" not in c.key[2]}
    assert named == {("softmax", fused[0][0]), ("sigmoid", fused[-1][0])}
    assert verdict.exit_code == 1 and {c.key[0] for c in verdict.changes} == {"softmax", "sigmoid"}
    assert all(c.adjusted_p is not None and c.adjusted_p >= c.p_value for c in verdict.changes)
    unchanged = {f: (old, _measured(report, seed=9) if f == "softmax" else as_family(_measured(report, seed=9), f))
                 for f, (old, _) in pairs.items()}  # fmt: skip
    assert compare_all(unchanged, 0.5, 0.2).exit_code == 0
    for row in unchanged["sigmoid"][1]["results"]:
        row["unreliable"] = "IQR/median 0.80"
    verdict = compare_all(unchanged, 0.5, 0.2)
    assert verdict.exit_code == 0 and {c.key[0] for c in verdict.unreliable} == {"sigmoid"}
