"""``focalbench compare``: the gate, a new report against a baseline report of the same machine kind."""

from __future__ import annotations

import argparse
import math

from focalbench.cli.console import UsageError

__all__ = ["add_arguments", "check_slowdown", "print_comparison", "run"]

HELP = "gate: compare a new report with a baseline report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline")
    parser.add_argument("new")
    parser.add_argument("--max-slowdown", type=float, default=0.5, help="allowed growth of a ratio (0.5 = 50%%)")
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME",
                        help="repeatable: gate only these implementations' timings (default: all)")  # fmt: skip
    parser.add_argument("--same-machine", action="store_true",
                        help="compare even if the reports name different machine kinds or builds (say so only when "
                             "both ran on one machine, e.g. an A/B run in one job)")  # fmt: skip


def check_slowdown(value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--max-slowdown must be a finite number >= 0. Got: {value}")


def print_comparison(comparison, max_slowdown: float, baseline: str) -> None:
    print(comparison.table())
    if comparison.unmatched:
        print(f"\n{comparison.unmatched} row(s) present in only one report (not compared)")
    for change in comparison.regressions:
        where = " / ".join(str(k) for k in change.key if k)
        print(f"REGRESSION {where}: ratio to {baseline} {change.old_ratio:.2f} -> {change.new_ratio:.2f} "
              f"({100 * change.change:+.0f}% > {100 * max_slowdown:.0f}%)")  # fmt: skip
    for impl, check, old, verdict in comparison.broken_checks:
        print(f"CHECK BROKEN {impl} / {check}: {old} -> {verdict}")
    if comparison.exit_code == 0:
        print(f"\nno regression beyond {100 * max_slowdown:.0f}% in {len(comparison.changes)} compared row(s)")


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.gate import comparable, compare_reports
    from focalbench.bench.report import ReportError, baseline_of, read_report

    check_slowdown(args.max_slowdown)
    try:
        baseline, new = read_report(args.baseline), read_report(args.new)
    except ReportError as error:
        raise UsageError(str(error)) from error
    reason = comparable(baseline, new)
    if reason is not None and not args.same_machine:
        raise UsageError(f"refusing to gate across machines: {reason} (--same-machine overrides)")
    comparison = compare_reports(baseline, new, args.max_slowdown, args.impls)
    if not comparison.changes and args.impls:
        raise UsageError(f"--impl {', '.join(args.impls)}: no timing row of that name in both reports")
    print_comparison(comparison, args.max_slowdown, baseline_of(new["results"]))
    return comparison.exit_code
