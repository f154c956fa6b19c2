"""Options shared by the suite: ``--device cpu|cuda`` selects where every check runs.

On a CPU run the Triton kernels (if triton is installed) run in Triton's interpreter, so they are checked here too.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", choices=("cpu", "cuda"), help="device the checks run on (default cpu)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "benchmark_suite: timings, collected only with --benchmark-only")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # a pytest-xdist worker: the cores shared between the workers, not each taking them all
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    if config.getoption("--device") == "cpu":
        # must be set before triton.jit runs, i.e. before the implementations are imported
        os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks are not part of the default run: keep them only under --benchmark-only."""
    if config.getoption("benchmark_only", default=False):
        return
    kept = [item for item in items if item.get_closest_marker("benchmark_suite") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> str:
    name = request.config.getoption("--device")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.exit("--device cuda was given but torch.cuda.is_available() is False", returncode=2)
    return name


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    from focalbench.bench.environment import environment

    machine_info["focalbench"] = environment(config.getoption("--device"))


@pytest.fixture
def quick_compiler(tmp_path_factory: pytest.TempPathFactory):
    """``quick_compiler(refuse_openmp=False)``: the environment of :func:`_quick_compiler` (a fast ``CC``)."""
    return lambda refuse_openmp=False: _quick_compiler(tmp_path_factory.mktemp("cc"), refuse_openmp)


def _quick_compiler(folder: Path, refuse_openmp: bool) -> dict[str, str]:
    """Environment for a child process whose C kernel builds in about a second instead of ~12: ``CC`` is a wrapper
    around the system compiler that turns ``-O3`` into ``-O0`` (optionally refusing ``-fopenmp``, as a compiler
    without OpenMP does). For the tests of the build machinery (cache, locking, fallbacks), which need real builds
    of the real source, not fast code; the kernel's values are checked elsewhere on the real build."""
    real = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    assert real, "the build-machinery tests need a C compiler"
    refuse = '[ "$a" = "-fopenmp" ] && exit 1; ' if refuse_openmp else ""
    wrapper = folder / ("cc-no-openmp" if refuse_openmp else "cc-quick")
    wrapper.write_text(
        f'#!/bin/sh\nfor a do shift; {refuse}[ "$a" = "-O3" ] && a=-O0; set -- "$@" "$a"; done\nexec "{real}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return {"CC": str(wrapper)}


#: A loss as fast as cross-entropy, and one whose forward takes 6x as long (forward+backward about 3x): the two
#: versions of the toy package the bisect and history tests commit.
TOY_FAST = """
import torch.nn.functional as F


def loss(logits, target, **keywords):
    return F.cross_entropy(logits, target)
"""

TOY_SLOW = """
import time

import torch.nn.functional as F


def loss(logits, target, **keywords):
    start = time.perf_counter()
    out = F.cross_entropy(logits, target)
    spent = time.perf_counter() - start
    while time.perf_counter() - start < 6 * spent:
        pass
    return out
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def toy_history(tmp_path_factory):
    """``toy_history(slow, files=None)``: a git repository of a package ``toyloss`` (``toyloss:loss``) with one
    commit per entry of ``slow`` (True: the slow loss), each also writing ``files(i)`` (relative path -> text);
    returns ``(repository, commits)``."""

    def make(slow: list[bool], files=None) -> tuple[Path, list[str]]:
        repo = tmp_path_factory.mktemp("repo")
        for args in (["init", "-q"], ["config", "user.email", "ci@example.org"], ["config", "user.name", "ci"]):
            git(repo, *args)
        (repo / "pyproject.toml").write_text(
            textwrap.dedent("""
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "toyloss"
            version = "0"
            [tool.setuptools]
            py-modules = ["toyloss"]
        """)
        )
        commits = []
        for i, is_slow in enumerate(slow):
            (repo / "toyloss.py").write_text(f"# version {i}\n{TOY_SLOW if is_slow else TOY_FAST}")
            for relative, text in (files(i) if files else {}).items():
                (repo / relative).parent.mkdir(parents=True, exist_ok=True)
                (repo / relative).write_text(text)
            git(repo, "add", ".")
            git(repo, "commit", "-q", "-m", f"version {i}")
            commits.append(git(repo, "rev-parse", "HEAD"))
        return repo, commits

    return make
