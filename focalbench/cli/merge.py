"""``focalbench merge``: a gate baseline, the per-row medians of several reports."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from focalbench.cli.console import UsageError

__all__ = ["add_arguments", "run"]

HELP = "a gate baseline: per-row medians of several reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT")
    parser.add_argument("--output", required=True, help="file to write (must not exist)")
    parser.add_argument("--same-machine", action="store_true", help="merge reports that do not name their machine")


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.gate import merge_reports
    from focalbench.bench.report import ReportError, read_report, write_new

    try:
        reports = [read_report(path) for path in args.reports]
    except ReportError as error:
        raise UsageError(str(error)) from error
    path = Path(args.output)
    if path.exists():
        raise UsageError(f"--output must be a new file (reports are never overwritten). Got: existing {path}")
    try:
        merged = merge_reports(reports, same_machine=args.same_machine)
    except ValueError as error:
        raise UsageError(str(error)) from error
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = write_new(path, json.dumps(merged, indent=1) + "\n")
    except OSError as error:
        raise UsageError(f"--output must be a new file in a writable directory. Got: {path} "
                         f"({error.strerror or error})") from error  # fmt: skip
    print(f"merged {len(reports)} report(s) into {written}")
    return 0
