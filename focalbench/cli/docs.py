"""``focalbench docs``: regenerate the tables README.md and docs/ restate (from the code and the reports
``docs/reports.json`` names); ``--use`` first points that index at new reports; ``--check`` changes nothing and fails
when a committed copy is stale or a named report is refused (:mod:`focalbench.bench.named_reports`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from focalbench.cli.console import UsageError, eprint

__all__ = ["GENERATORS", "add_arguments", "command_list", "run"]

HELP = "regenerate the generated tables of README.md and docs/ (--check: fail when one is stale)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=".", help="the repository's root (default: the current directory)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a table is stale or a report the tables read is refused")
    parser.add_argument("--use", nargs="+", action="extend", metavar="FILE", default=[],
                        help="first name these reports under results/ in docs/reports.json, each as its family's "
                             "report of its kind (speed, accuracy, mutants), then regenerate")  # fmt: skip


def command_list(root: Path) -> str:
    """The README's command list, from the parser: one line per command with its help."""
    import importlib

    from focalbench.cli import COMMANDS

    helps = {name: importlib.import_module(f"focalbench.cli.{name.replace('-', '_')}").HELP for name in COMMANDS}
    return "".join(f"* `focalbench {name}` — {helps[name]}.\n" for name in COMMANDS)


#: The generated blocks the command line adds to :func:`focalbench.bench.tables.generators`.
GENERATORS = {"commands": command_list}


def _print_refused(refused: list[str]) -> None:
    for line in refused:
        print(f"refused: {line}")


def run(args: argparse.Namespace) -> int:
    from focalbench.bench import named_reports, tables

    root = Path(args.root)
    if not (root / "README.md").exists():
        raise UsageError(f"--root must be the repository's root (holding README.md). Got: {root}")
    if args.check:
        if args.use:
            raise UsageError("--check changes nothing, so it takes no --use")
        refused, stale = named_reports.refusals(root), tables.stale(root, GENERATORS)
        _print_refused(refused)
        if stale:
            then = "; a table of a refused report stays stale until the report is re-recorded" if refused else ""
            print(f"stale generated table(s): {', '.join(stale)} (run `focalbench docs` and commit the result{then})")
        if refused or stale:
            return 1
        print(f"{len(tables.blocks(root))} generated table(s) current")
        return 0
    try:
        for family, kind, old, new in named_reports.use(root, args.use) if args.use else []:
            eprint(f"{family} {kind} report: results/{new}" + (f" (was results/{old})" if old and old != new else ""))
        changed = tables.refresh(root, GENERATORS)
    except ValueError as error:
        raise UsageError(str(error)) from error
    eprint(f"regenerated {len(changed)} table(s): {', '.join(changed) or 'none changed'}")
    refused = named_reports.refusals(root)
    if refused:
        _print_refused(refused)
        print(f"{len(refused)} named report(s) refused: the tables that read them were left as they were")
        return 1
    return 0
