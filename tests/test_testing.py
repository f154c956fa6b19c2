"""focalbench.testing: a user's focal loss certified inside the user's own pytest run, and a user's module found in
the current directory as ``python -m`` would find it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import focalbench
from focalbench.arena.registry import KnownDefect, load_implementation
from focalbench.testing import check_loss, parametrize_checks

#: The checks the tests run: quick ones (86 cases), enough to catch an alpha applied twice.
CHECKS = ["matches_reference", "cross_entropy_at_gamma_zero"]


def correct_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
    return focalbench.focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
                                 ignore_index=ignore_index)  # fmt: skip


def alpha_twice(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
    """A focal loss that applies alpha twice (alpha_t squared)."""
    squared = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float64) ** 2
    return focalbench.focal_loss(logits, target, gamma=gamma, alpha=squared, reduction=reduction,
                                 ignore_index=ignore_index)  # fmt: skip


def test_importing_focalbench_testing_imports_neither_the_arena_nor_pytest():
    code = ("import sys, focalbench.testing; "
            "print(sorted(m for m in sys.modules if m.startswith('focalbench.arena') or m == 'pytest'))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_check_loss_returns_every_outcome_of_a_correct_loss():
    outcomes = check_loss(correct_loss, family="softmax", checks=CHECKS)
    assert list(outcomes) == CHECKS
    assert {o.status for cases in outcomes.values() for _, o in cases} == {"pass"}
    assert len(outcomes["cross_entropy_at_gamma_zero"]) == 13


def test_check_loss_lists_every_unexpected_outcome_with_its_case_seed_and_values():
    with pytest.raises(AssertionError) as raised:
        check_loss(alpha_twice, family="softmax", checks=CHECKS)
    message = str(raised.value)
    first, *lines = message.splitlines()
    failures = [line for line in lines if not line.startswith("    case: ")]
    assert first.startswith(
        f"{len(failures)} unexpected outcome(s) of {__name__}:alpha_twice in 86 cases of 2 check(s) on cpu"
    )
    assert len(failures) == len(lines) // 2 and failures
    assert all("-a-" in line for line in failures)  # only the cases with an alpha fail
    assert (f"{__name__}:alpha_twice / matches_reference / 16x7-fp32-g0-a-scalar-mean-ign0.2-seed11 (seed=11): fail: "
            "loss: |") in message  # fmt: skip
    assert "exceeds rtol=" in message
    case_line = lines[failures.index(next(f for f in failures if "seed=11)" in f)) * 2 + 1]
    from focalbench.arena.families.softmax.cases import Case  # the repr rebuilds the case

    rebuilt = eval(
        case_line.removeprefix("    case: focalbench.arena.families.softmax.cases."), {"Case": Case, "torch": torch}
    )
    assert rebuilt.id == "16x7-fp32-g0-a-scalar-mean-ign0.2-seed11" and rebuilt.seed == 11


def test_check_loss_reads_declared_defects_and_capabilities_strictly():
    def declared(logits, target, **kwargs):
        return alpha_twice(logits, target, **kwargs)

    declared.focalbench_known_defects = (
        KnownDefect(
            "matches_reference", "alpha applied twice", when=lambda case: case.alpha_kind in ("scalar", "per_class")
        ),  # alpha = 0: 0 twice is 0
    )
    declared.focalbench_capabilities = {"dense", "reduction:none", "alpha:scalar", "alpha:per_class"}
    outcomes = check_loss(declared, family="softmax", checks=CHECKS)
    statuses = {o.status for _, o in outcomes["matches_reference"]}
    assert statuses == {"pass", "xfail", "n/a"}  # n/a: the ignore_index cases, undeclared

    def repaired(logits, target, **kwargs):
        return correct_loss(logits, target, **kwargs)

    repaired.focalbench_known_defects = declared.focalbench_known_defects  # repaired: the declaration is stale
    with pytest.raises(AssertionError, match=r"xpass: declared known defect did not reproduce: alpha applied twice"):
        check_loss(repaired, family="softmax", checks=["matches_reference"])


def test_check_loss_refuses_an_unknown_check_and_a_mismatched_family():
    with pytest.raises(ValueError, match=r"checks must be among softmax's checks \(matches_reference, .*Got: 'nope'"):
        check_loss(correct_loss, family="softmax", checks="nope")
    with pytest.raises(ValueError, match=r"takes softmax's keywords .* use --family softmax"):
        check_loss(correct_loss, family="sigmoid")
    with pytest.raises(ValueError, match=r"device must be 'cpu' or 'cuda'. Got: 'tpu'"):
        check_loss(correct_loss, family="softmax", device="tpu")


def test_parametrize_checks_makes_one_pytest_test_per_check_and_case():
    test = parametrize_checks(correct_loss, family="softmax", checks=CHECKS)
    (mark,) = test.pytestmark
    assert mark.args[0] == ("focalbench_check", "focalbench_case")
    ids = [param.id for param in mark.args[1]]
    assert len(ids) == len(set(ids)) == 86
    assert "matches_reference-16x7-fp32-g0-a-scalar-mean-ign0.2-seed11" in ids


# A user's project, apart from this repository: its own losses, its own test file of one line per loss.
PROJECT = {
    "pytest.ini": "[pytest]\n",
    "my_losses.py": """
        import torch

        import focalbench
        from focalbench.arena.registry import KnownDefect


        def correct(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
            return focalbench.focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
                                         ignore_index=ignore_index)


        def alpha_twice(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
            squared = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float64) ** 2
            return focalbench.focal_loss(logits, target, gamma=gamma, alpha=squared, reduction=reduction,
                                         ignore_index=ignore_index)


        def declared(logits, target, **kwargs):
            return alpha_twice(logits, target, **kwargs)


        declared.focalbench_capabilities = {"dense", "reduction:none", "alpha:scalar", "alpha:per_class"}
        declared.focalbench_known_defects = (
            KnownDefect("matches_reference", "alpha applied twice",
                        when=lambda case: case.alpha_kind in ("scalar", "per_class")),
        )
    """,
    "test_correct.py": f"""
        from focalbench.testing import parametrize_checks

        import my_losses

        test_correct = parametrize_checks(my_losses.correct, family="softmax", checks={CHECKS!r})
        test_declared = parametrize_checks(my_losses.declared, family="softmax", checks={CHECKS!r})
    """,
    "test_buggy.py": f"""
        from focalbench.testing import parametrize_checks

        import my_losses

        test_alpha_twice = parametrize_checks(my_losses.alpha_twice, family="softmax", checks={CHECKS!r})
    """,
}


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfsx", *args],
                          cwd=project, capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def users_project(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("users_project")
    for name, text in PROJECT.items():
        (project / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return project


def test_a_users_correct_loss_passes_in_the_users_pytest_run(users_project):
    result = run_pytest(users_project, "test_correct.py")
    assert result.returncode == 0, result.stdout + result.stderr
    # correct: 86 passed; declared: 64 pass (no alpha, or alpha without ignore_index) ... xfail and n/a by declaration
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " skipped" in summary and " xfailed" in summary, result.stdout
    assert "XFAIL test_correct.py::test_declared[matches_reference-" in result.stdout
    assert "known defect: alpha applied twice" in result.stdout
    assert "does not support ignore_index" in result.stdout  # the skip's reason


def test_a_users_buggy_loss_fails_naming_the_check_the_case_and_the_seed(users_project):
    result = run_pytest(users_project, "test_buggy.py")
    assert result.returncode == 1, result.stdout + result.stderr
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    assert failed and all("-a-" in line for line in failed), result.stdout
    case = "matches_reference-16x7-fp32-g0-a-scalar-mean-ign0.2-seed11"
    assert f"FAILED test_buggy.py::test_alpha_twice[{case}]" in result.stdout
    assert ("my_losses:alpha_twice / matches_reference / 16x7-fp32-g0-a-scalar-mean-ign0.2-seed11 (seed=11): fail: "
            "loss: |") in result.stdout  # fmt: skip
    assert "case: focalbench.arena.families.softmax.cases.Case(shape=(16, 7)" in result.stdout
    assert f"{len(failed)} failed, " in result.stdout.splitlines()[-1]


# Item: `focalbench check my_module:my_loss` run from the folder holding my_module.py (not on sys.path for a console
# script) finds it, as `python -m` would.
CWD_MODULE = "focalbench_cwd_probe_loss"


@pytest.fixture
def cwd_module(tmp_path, monkeypatch):
    (tmp_path / f"{CWD_MODULE}.py").write_text(textwrap.dedent('''
        import focalbench

        def loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
            return focalbench.focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
                                         ignore_index=ignore_index)
    '''), encoding="utf-8")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", ".", str(tmp_path))])
    yield tmp_path
    sys.modules.pop(CWD_MODULE, None)


def test_a_users_module_in_the_current_directory_is_found_as_python_m_would(cwd_module):
    path = list(sys.path)
    impl = load_implementation(f"{CWD_MODULE}:loss", "softmax")
    assert impl.name == f"{CWD_MODULE}:loss" and impl.external
    assert sys.path == path  # the current directory was on it for that import only
    assert sys.modules[CWD_MODULE].__file__ == str(cwd_module / f"{CWD_MODULE}.py")


def test_a_module_found_nowhere_names_the_directories_searched(cwd_module):
    with pytest.raises(ValueError) as raised:
        load_implementation("focalbench_no_such_module:loss")
    message = str(raised.value)
    assert message.startswith("implementation 'focalbench_no_such_module:loss' could not be loaded: No module named "
                              f"'focalbench_no_such_module' (searched the current directory {cwd_module} and sys.path: "
                              f"{sys.path[0]}")  # fmt: skip
    assert message.endswith("; set PYTHONPATH to add a directory)")


def test_a_module_that_imports_a_missing_one_says_which(cwd_module):
    (cwd_module / "focalbench_cwd_broken.py").write_text("import focalbench_missing_dependency\n", encoding="utf-8")
    try:
        with pytest.raises(ValueError, match=r"could not be loaded: No module named 'focalbench_missing_dependency'$"):
            load_implementation("focalbench_cwd_broken:loss")
    finally:
        sys.modules.pop("focalbench_cwd_broken", None)
