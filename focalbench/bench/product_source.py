"""The product source fingerprint: which code ``focal_loss`` and ``sigmoid_focal_loss`` run.

A hash of every source file of the product's packages (:data:`PRODUCT_PACKAGES`) as Python imports them, from a
checkout or from site-packages alike. Every report records it in its environment block (``product_source``); the
generated tables of README.md and docs/ refuse a report of other product source
(:mod:`focalbench.bench.named_reports`), so every figure they state is one of the code that ships. The git commit
cannot do this job: it is absent outside a checkout, and it changes with every edit of the harness, tests or docs.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PRODUCT_PACKAGES",
    "PRODUCT_SUFFIXES",
    "fingerprint",
    "is_source",
    "product_source_files",
    "product_source_fingerprint",
]

#: The packages whose source is the product: what ``focal_loss`` and ``sigmoid_focal_loss`` run.
PRODUCT_PACKAGES = ("focalbench.losses", "focalbench.kernels")

#: Which of their files are source (the C kernels are compiled from their ``.c`` and the ``.h`` they include when
#: first used; no compiled file is).
PRODUCT_SUFFIXES = (".py", ".c", ".h")


def is_source(relative: Path) -> bool:
    """Whether a file at ``relative`` (inside a product package) is source: its suffix in :data:`PRODUCT_SUFFIXES`,
    nothing under ``__pycache__``, no hidden part (an editor's swap file)."""
    hidden = any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
    return relative.suffix in PRODUCT_SUFFIXES and not hidden


def fingerprint(files: Iterable[tuple[str, bytes]]) -> str:
    """12 hex digits of SHA-256 over each ``(relative path, bytes)``'s path, size and bytes, in the order given."""
    digest = hashlib.sha256()
    for relative, data in files:
        digest.update(f"{relative}\0{len(data)}\0".encode())  # the size: no file's bytes can pass for the next path
        digest.update(data)
    return digest.hexdigest()[:12]


def product_source_files() -> list[tuple[str, Path]]:
    """Every source file of the product's packages as imported: ``(relative path, file)``, sorted by relative path.

    The relative path starts at the directory that holds ``focalbench/`` (``focalbench/kernels/focal_cpu.c``), so a
    checkout and an installed copy of the same source name their files alike. Files whose suffix is not in
    :data:`PRODUCT_SUFFIXES`, anything under ``__pycache__`` and hidden files (an editor's swap file) are left out.

    Example:
        >>> ("focalbench/kernels/focal_cpu.c" in dict(product_source_files()),
        ...  "focalbench/losses/softmax/api.py" in dict(product_source_files()))
        (True, True)
    """
    files: dict[str, Path] = {}
    for name in PRODUCT_PACKAGES:
        for location in importlib.import_module(name).__path__:
            directory = Path(location)
            holder = directory.parents[name.count(".")]  # the directory that holds focalbench/
            for path in directory.rglob("*"):
                if is_source(path.relative_to(directory)) and path.is_file():
                    files[path.relative_to(holder).as_posix()] = path
    return sorted(files.items())


def product_source_fingerprint(files: list[tuple[str, Path]] | None = None) -> str:
    """12 hex digits of SHA-256 over each file's relative path, size and bytes, in the order of the paths.

    ``files`` defaults to :func:`product_source_files`: the source imported now.

    Example:
        >>> len(product_source_fingerprint()), product_source_fingerprint([])
        (12, 'e3b0c44298fc')
    """
    chosen = product_source_files() if files is None else files
    return fingerprint((relative, path.read_bytes()) for relative, path in chosen)
