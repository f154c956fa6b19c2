"""The product source fingerprint: every source file of the product's packages, from a checkout or an installed copy
alike, and every report records it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from focalbench.bench.environment import environment
from focalbench.bench.product_source import (
    PRODUCT_PACKAGES,
    PRODUCT_SUFFIXES,
    product_source_files,
    product_source_fingerprint,
)

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = [name.replace(".", "/") for name in PRODUCT_PACKAGES]


def _tracked() -> set[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", *FOLDERS], capture_output=True, text=True,
                             check=True, timeout=10).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")
    return set(out.split())


def test_the_fingerprint_covers_every_committed_file_of_the_product_packages():
    hashed = dict(product_source_files())
    assert _tracked() <= set(hashed), "a product file is not hashed: add its suffix to PRODUCT_SUFFIXES (and install)"
    assert "focalbench/kernels/focal_cpu.c" in hashed and "focalbench/losses/softmax/api.py" in hashed
    assert all(name.startswith(tuple(FOLDERS)) and name.endswith(PRODUCT_SUFFIXES) for name in hashed)
    assert list(hashed) == sorted(hashed)


def test_every_report_records_the_product_source():
    assert environment("cpu")["product_source"] == product_source_fingerprint()


def _copy(tmp_path: Path) -> list[tuple[str, Path]]:
    """The product's files copied under ``tmp_path``, named as they were."""
    files = []
    for relative, path in product_source_files():
        copy = tmp_path / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        files.append((relative, copy))
    return files


def test_the_fingerprint_changes_with_any_byte_or_name_of_the_source(tmp_path):
    files = _copy(tmp_path)
    current = product_source_fingerprint()
    assert product_source_fingerprint(files) == current and len(current) == 12
    kernel = dict(files)["focalbench/kernels/focal_cpu.c"]
    kernel.write_bytes(kernel.read_bytes() + b"\n")
    assert product_source_fingerprint(files) != current
    kernel.write_bytes(dict(product_source_files())["focalbench/kernels/focal_cpu.c"].read_bytes())
    renamed = [("focalbench/kernels/focal_cpu2.c" if name.endswith("focal_cpu.c") else name, path) for name, path in
               files]  # fmt: skip
    assert product_source_fingerprint(files) == current and product_source_fingerprint(renamed) != current


def test_an_installed_copy_has_the_fingerprint_of_its_source_whatever_was_compiled_beside_it(tmp_path):
    """site-packages: the package imported from elsewhere, with bytecode, a built library and an editor's swap file
    beside the source; none of those counts."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "focalbench", site / "focalbench", ignore=shutil.ignore_patterns("__pycache__"))
    for extra in ("kernels/focal_cpu-1a2b.so", "kernels/__pycache__/cpu.cpython-311.pyc", "losses/.api.py.swp",
                  "losses/softmax/__pycache__/api.py"):  # fmt: skip
        (site / "focalbench" / extra).parent.mkdir(parents=True, exist_ok=True)
        (site / "focalbench" / extra).write_bytes(b"compiled")
    code = ("import focalbench.losses\nfrom focalbench.bench.product_source import product_source_fingerprint\n"
            "print(focalbench.losses.__path__[0], product_source_fingerprint())")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env=env).stdout.split()  # fmt: skip
    assert out == [str(site / "focalbench" / "losses"), product_source_fingerprint()]
