"""Edges a user hits outside the checks: a target that requires grad, class-index conversion, experiments with too
few seeds, and the command line's listings and mismatches."""

from __future__ import annotations

import pytest
import torch

from focalbench import sigmoid_focal_loss
from focalbench.cli import main
from focalbench.experiments.report import MIN_INTERVAL_PAIRS, TESTED_METRICS, paired_difference, paired_table
from focalbench.losses.sigmoid.semantics import class_index_targets


def test_a_sigmoid_target_that_requires_grad_is_refused_rather_than_its_gradient_dropped() -> None:
    logits = torch.randn(5, requires_grad=True)
    target = torch.rand(5, requires_grad=True)  # a teacher's soft targets, not detached
    with pytest.raises(ValueError, match=r"target must not require grad: .* target\.detach\(\)"):
        sigmoid_focal_loss(logits, target)
    sigmoid_focal_loss(logits, target.detach()).sum().backward()
    assert logits.grad is not None
    with torch.no_grad():  # no gradient is asked for: nothing is dropped
        sigmoid_focal_loss(logits, target)


@pytest.mark.parametrize(
    ("labels", "num_classes", "error", "message"),
    [
        (torch.tensor(1), 3, ValueError, r"labels must have shape \(N,\) .* Got: a 0-dim tensor"),
        (torch.tensor([0, 1]), 0, ValueError, r"num_classes must be at least 1\. Got: 0"),
        (torch.tensor([0, 1]), -1, ValueError, r"num_classes must be at least 1\. Got: -1"),
        (torch.tensor([0, 1]), 2.0, TypeError, r"num_classes must be an int\. Got: float 2\.0"),
    ],
)
def test_class_index_targets_rejects_what_it_cannot_convert_in_one_line(labels, num_classes, error, message) -> None:
    with pytest.raises(error, match=message):
        class_index_targets(labels, num_classes)


def test_too_few_seeds_give_no_interval_and_no_beyond_noise_mark() -> None:
    few = paired_difference([0.1, 0.3])  # two seeds: a bootstrap "interval" would be their min and max
    assert few["ci_low"] is None and few["ci_high"] is None and few["wilcoxon_p"] is not None
    enough = paired_difference([0.1, 0.3, 0.2, 0.25, 0.15, 0.4][:MIN_INTERVAL_PAIRS])
    assert enough["ci_low"] is not None and enough["ci_low"] > 0
    document = {"paired": [{"alpha": "none", "schedule": "linear", "metric": metric, **few, "holm_p": 0.5,
                            "beyond_noise": False} for metric in TESTED_METRICS]}  # fmt: skip
    table = paired_table(document, fmt="simple")
    assert f"no interval: 2 seeds < {MIN_INTERVAL_PAIRS}" in table and "**" not in table


def test_check_refuses_a_family_that_does_not_match_the_named_implementation(capsys) -> None:
    assert main(["check", "fused", "--family", "sigmoid"]) == 2
    assert "--family sigmoid must match the named implementations. Got: fused is a softmax focal loss" in (
        capsys.readouterr().err
    )


def test_list_prints_a_table_per_family_that_fits_a_terminal(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "softmax family:" in out and "sigmoid family:" in out
    assert max(len(line) for line in out.splitlines()) <= 120
    assert out.index("softmax family:") < out.index("sigmoid family:") < out.index("sigmoid_reference")
    assert main(["list", "--family", "softmax"]) == 0
    only = capsys.readouterr().out
    assert "sigmoid family:" not in only and "sigmoid_fused" not in only and "fused_eager" in only


def test_list_wraps_a_long_unavailable_reason_to_the_terminal_and_keeps_all_of_it(capsys, monkeypatch) -> None:
    from focalbench.arena import registry

    reason = ("ImportError: segmentation_models_pytorch is not installed (pip install --no-deps "
              "'segmentation_models_pytorch==0.6.0'): No module named 'segmentation_models_pytorch'")  # fmt: skip
    monkeypatch.setitem(registry._UNAVAILABLE, "sigmoid_long_reason_example", reason)
    monkeypatch.setitem(registry._UNAVAILABLE_FAMILY, "sigmoid_long_reason_example", "sigmoid")
    assert main(["list", "--family", "sigmoid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 120
    first = next(i for i, line in enumerate(lines) if line.startswith("sigmoid_long_reason_example: unavailable here"))
    entry = [lines[first]]
    for line in lines[first + 1 :]:
        if not line.startswith("    "):
            break
        entry.append(line)
    assert len(entry) == 2  # wrapped once, each word whole
    assert " ".join(line.strip() for line in entry) == f"sigmoid_long_reason_example: unavailable here: {reason}"


def test_compare_help_states_its_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 0.5: 50%)" in out and "(default 0.2)" in out


def test_a_run_that_would_not_fit_in_memory_is_refused_before_anything_is_allocated(capsys, monkeypatch, tmp_path):
    from focalbench.cli import run as run_command

    monkeypatch.setattr(run_command, "available_memory", lambda device: 2**30)
    assert main(["run", "--shape", "100000x1000", "--quick", "--skip-checks", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("focalbench run: --shape 100000x1000 needs about 2.2 GiB on cpu (6 tensors of 100,000,000 "
                   "elements); 1.0 GiB is available")  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_ctrl_c_is_one_line_and_exit_130(capsys, monkeypatch) -> None:
    from focalbench.cli import list as list_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(list_command, "run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err.strip() == "focalbench list: interrupted"


def test_merge_into_an_unwritable_place_is_one_line(capsys) -> None:
    from pathlib import Path

    report = sorted((Path(__file__).parents[1] / "results").glob("focalbench-cpu-*.json"))[0]
    assert main(["merge", str(report), "--output", "/proc/focalbench-merged.json"]) == 2
    assert "--output must be a new file in a writable directory. Got: /proc/focalbench-merged.json" in (
        capsys.readouterr().err
    )


def test_reports_are_written_readable_by_others_as_figures_are(tmp_path) -> None:
    import os
    import stat

    from focalbench.bench.report import write_new

    umask = os.umask(0o022)
    try:
        path = write_new(tmp_path / "report.json", "{}\n")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_c_kernel_build_says_it_once_and_removes_what_a_killed_build_left(tmp_path, quick_compiler) -> None:
    import os
    import subprocess
    import sys

    stray = tmp_path / ".building-999999999-abc.so"  # a build whose process no longer exists
    stray.write_bytes(b"")
    env = {**os.environ, "FOCALBENCH_CACHE": str(tmp_path), "FOCALBENCH_CPU_TARGET": "generic", **quick_compiler()}
    code = "import torch, focalbench; focalbench.focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))"
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("focalbench: building focal_cpu.c for this CPU") == 1
    assert not stray.exists()
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "building" not in again.stderr  # loaded from the cache, silently


def test_a_misspelled_build_target_warns_that_the_slow_kernel_runs_and_why() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "FOCALBENCH_CPU_TARGET": "x86_64-v3"}  # x86-64-v3, misspelled
    code = "import torch, focalbench; focalbench.focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning: focalbench: the softmax loss on cpu runs fused_eager (PyTorch operations, slower), " \
           "because fused: FOCALBENCH_CPU_TARGET must be one of native, x86-64-v2" in result.stderr  # fmt: skip


def test_an_interrupted_run_keeps_what_it_measured(capsys, monkeypatch, tmp_path) -> None:
    import json

    from focalbench.bench import runner

    real, calls = runner.run_case, []

    def interrupted_at_the_second_case(*args, **kwargs):
        calls.append(args[1].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_case", interrupted_at_the_second_case)
    argv = ["run", "--impl", "fused", "--shape", "64x5", "--shape", "128x5", "--quick", "--rounds", "1",
            "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 130
    (report,) = tmp_path.glob("*.json")
    document = json.loads(report.read_text())
    assert document["settings"]["interrupted"] is True and not document["checks"]
    assert {row["shape_name"] for row in document["results"]} == {"64x5"}
    assert "interrupted: writing the" in capsys.readouterr().err


def test_list_of_one_family_lists_only_that_familys_unavailable_implementations(capsys, monkeypatch) -> None:
    from focalbench.arena import registry

    monkeypatch.setitem(registry._UNAVAILABLE, "sigmoid_example", "example reason")
    monkeypatch.setitem(registry._UNAVAILABLE_FAMILY, "sigmoid_example", "sigmoid")
    assert main(["list", "--family", "softmax"]) == 0
    assert "sigmoid_example" not in capsys.readouterr().out
    assert main(["list", "--family", "sigmoid"]) == 0
    assert "sigmoid_example: unavailable here: example reason" in capsys.readouterr().out
