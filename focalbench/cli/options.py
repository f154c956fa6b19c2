"""What several commands parse alike: dtype, device and target choices, the family and implementation selection,
an output directory proven writable before any measurement."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from focalbench.cli.console import UsageError

__all__ = ["CPU_TARGETS", "DEVICES", "DTYPES", "add_family", "family_of", "one_family", "resolve", "writable_directory"]

DTYPES = ("float16", "bfloat16", "float32", "float64")
DEVICES = ("cpu", "cuda")
CPU_TARGETS = ("native", "x86-64-v2", "x86-64-v3", "x86-64-v4", "generic")  # as focalbench.kernels.build.TARGETS


def add_family(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--family NAME``: checked against the registered families when the command runs (a family can be registered
    at run time, so the parser cannot list them)."""
    parser.add_argument("--family", metavar="NAME", help=help_text + " (softmax, sigmoid, or a registered one)")


def family_of(name: str | None) -> str | None:
    """``--family`` checked: the name, or None; a UsageError naming the registered families otherwise."""
    if name is None:
        return None
    from focalbench.arena.family import get_family

    try:
        return get_family(name).name
    except ValueError as error:
        raise UsageError(f"--{error}") from error


def resolve(names: list[str] | None, device: str, family: str | None = None) -> list:
    """The named implementations (a user's ``module:attr`` without ``focalbench_family`` needs ``family``), else the
    registered ones of ``family`` (every family's when None) that run on ``device``."""
    from focalbench.arena.registry import get_implementation, list_implementations, load_implementation

    try:
        if names:
            return [load_implementation(name, family) for name in names]
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error
    impls = [get_implementation(name) for name in list_implementations(family)]
    return [i for i in impls if device in i.devices and not i.extra.get("interpreted")]


def one_family(args: argparse.Namespace, device: str) -> tuple[list, str]:
    """The implementations of a run or an accuracy sweep and their one family: ``--family``, else the named
    implementations', else softmax."""
    chosen = family_of(args.family)
    impls = resolve(args.impls, device, chosen or (None if args.impls else "softmax"))
    families = {impl.family for impl in impls}
    family = chosen or (families.pop() if len(families) == 1 else "softmax")
    others = [impl.name for impl in impls if impl.family != family]
    if others:
        raise UsageError(f"--impl must name implementations of one family ({family}). Got: {', '.join(others)} of "
                         "another")  # fmt: skip
    return impls, family


def writable_directory(path: str, option: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there, before any measurement."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise UsageError(f"{option} must be a writable directory. Got: {path} ({error.strerror or error})") from error
    return directory
