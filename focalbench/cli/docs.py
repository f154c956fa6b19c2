"""``focalbench docs``: regenerate the tables README.md and docs/ restate (from the code and the committed reports);
``--check`` changes nothing and fails when a committed copy is stale."""

from __future__ import annotations

import argparse
from pathlib import Path

from focalbench.cli.console import UsageError, eprint

__all__ = ["GENERATORS", "add_arguments", "command_list", "run"]

HELP = "regenerate the generated tables of README.md and docs/ (--check: fail when one is stale)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=".", help="the repository's root (default: the current directory)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")


def command_list(root: Path) -> str:
    """The README's command list, from the parser: one line per command with its help."""
    import importlib

    from focalbench.cli import COMMANDS

    helps = {name: importlib.import_module(f"focalbench.cli.{name.replace('-', '_')}").HELP for name in COMMANDS}
    return "".join(f"* `focalbench {name}` — {helps[name]}.\n" for name in COMMANDS)


#: The generated blocks the command line adds to :func:`focalbench.bench.tables.generators`.
GENERATORS = {"commands": command_list}


def run(args: argparse.Namespace) -> int:
    from focalbench.bench import tables

    root = Path(args.root)
    if not (root / "README.md").exists():
        raise UsageError(f"--root must be the repository's root (holding README.md). Got: {root}")
    if args.check:
        stale = tables.stale(root, GENERATORS)
        if stale:
            print(f"stale generated table(s): {', '.join(stale)} (run `focalbench docs` and commit the result)")
            return 1
        print(f"{len(tables.blocks(root))} generated table(s) current")
        return 0
    try:
        changed = tables.refresh(root, GENERATORS)
    except ValueError as error:
        raise UsageError(str(error)) from error
    eprint(f"regenerated {len(changed)} table(s): {', '.join(changed) or 'none changed'}")
    return 0
