"""``focalbench``: the command line. One module per subcommand (:data:`COMMANDS`), each holding its parser
(``add_arguments``) beside its action (``run``); :mod:`~focalbench.cli.console` is the leaf both use for messages
and the one-line usage error. A command's module imports torch and the arena only inside ``run``: argument errors and
``--help`` come first, and fast."""

from __future__ import annotations

import argparse
import importlib
import os
from collections.abc import Sequence

from focalbench.cli.console import UsageError, eprint

__all__ = ["COMMANDS", "main", "parser"]

#: The subcommands, in the order ``--help`` lists them: each the name of a module of this package.
COMMANDS = (
    "list", "check", "mutants", "run", "compare", "merge", "accuracy", "plot", "fingerprint", "gate", "ab", "bisect",
    "gate-study", "history", "publish", "experiment", "docs",
)  # fmt: skip


def _module(command: str):
    return importlib.import_module(f"focalbench.cli.{command.replace('-', '_')}")


def parser() -> argparse.ArgumentParser:
    """The argument parser, every subcommand's options from its module."""
    top = argparse.ArgumentParser(prog="focalbench", description="Correctness, stability and speed of focal losses.")
    sub = top.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        module = _module(command)
        module.add_arguments(sub.add_parser(command, help=module.HELP))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "cpu_target", None):  # before anything builds the kernel
        os.environ["FOCALBENCH_CPU_TARGET"] = args.cpu_target
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            eprint("focalbench: --device cuda, but torch.cuda.is_available() is False (no GPU or a CPU-only torch)")
            return 2
    try:
        return _module(args.command).run(args)
    except UsageError as error:
        eprint(f"focalbench {args.command}: {error}")
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's code for SIGINT; reports are written whole or not at all
        eprint(f"focalbench {args.command}: interrupted")
        return 130
