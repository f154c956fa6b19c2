"""``focalbench fingerprint``: this machine's fingerprint, the name of its gate baseline."""

from __future__ import annotations

import argparse

from focalbench.cli.console import eprint

__all__ = ["add_arguments", "run"]

HELP = "print this machine's fingerprint (the name of its gate baseline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.environment import environment

    env = environment("cpu")
    print(env["machine_fingerprint"])
    eprint(f"{env['cpu']} ({env['cpu_id']}), {env['isa']}, {env['threads']} thread(s), torch {env['torch']}")
    return 0
