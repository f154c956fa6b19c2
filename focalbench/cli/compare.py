"""``focalbench compare``: the gate, a new report against a baseline report of the same machine kind."""

from __future__ import annotations

import argparse
import math

from focalbench.cli.console import UsageError

__all__ = ["add_allowances", "add_arguments", "change_line", "check_slowdown", "compared", "print_comparison", "run"]

HELP = "gate: compare a new report with a baseline report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline")
    parser.add_argument("new")
    add_allowances(parser)
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME",
                        help="repeatable: gate only these implementations' timings (default: all)")  # fmt: skip
    parser.add_argument("--same-machine", action="store_true",
                        help="compare even if the reports name different machine kinds or builds (say so only when "
                             "both ran on one machine, e.g. an A/B run in one job)")  # fmt: skip


def add_allowances(parser: argparse.ArgumentParser) -> None:
    """The gate's allowances (compare and ab)."""
    parser.add_argument("--max-slowdown", type=float, default=0.5,
                        help="allowed growth of one row's ratio, if significant (default 0.5: 50%%)")  # fmt: skip
    parser.add_argument("--max-mean-slowdown", type=float, default=0.2,
                        help="allowed growth of an implementation's mean over its rows (default 0.2)")  # fmt: skip


def check_slowdown(args: argparse.Namespace) -> None:
    for option, value in (("--max-slowdown", args.max_slowdown), ("--max-mean-slowdown", args.max_mean_slowdown)):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{option} must be a finite number >= 0. Got: {value}")


def compared(baseline: dict, new: dict, args: argparse.Namespace, impls):
    """The comparison, or the one-line reason the two reports cannot be judged (exit 2)."""
    from focalbench.bench.gate import GateError, compare_reports

    try:
        return compare_reports(baseline, new, args.max_slowdown, impls, max_mean_slowdown=args.max_mean_slowdown)
    except GateError as error:
        raise UsageError(str(error)) from error


def change_line(change, baseline: str, regressed: bool = False) -> str:
    """One compared row in words: where, its ratios to ``baseline``, the change and its tests (and, for a regressed
    row whose samples are noisy, the interval end that makes it certain)."""
    where = " / ".join(str(k) for k in change.key if k)
    tested = "" if change.p_value is None else f", p = {change.p_value:.2g}"
    if change.adjusted_p is not None:
        tested += f", Holm-adjusted {change.adjusted_p:.2g}"
    if change.unreliable and regressed:
        tested += f"; noisy ({change.unreliable}), yet its interval's favourable end is {100 * change.low:+.0f}%"
    return (f"{where}: ratio to {baseline} {change.old_ratio:.2f} -> {change.new_ratio:.2f} "
            f"({100 * change.change:+.0f}%{tested})")  # fmt: skip


def print_comparison(comparison, max_slowdown: float) -> None:
    print(comparison.table())
    if comparison.unmatched:
        print(f"\n{comparison.unmatched} row(s) present in only one report (not compared)")
    for change in comparison.unreliable:
        where = " / ".join(str(k) for k in change.key if k)
        print(f"UNRELIABLE {where}: {change.unreliable}: neither a pass nor a regression, re-measure")
    for change in comparison.regressions:
        print("REGRESSION " + change_line(change, comparison.baseline, regressed=True))
    for impl, check, old, verdict in comparison.broken_checks:
        print(f"CHECK BROKEN {impl} / {check}: {old} -> {verdict}")
    if comparison.exit_code == 0:
        judged = len(comparison.changes) - len(comparison.unreliable)
        print(f"\nno regression beyond {100 * max_slowdown:.0f}% in {judged} compared row(s)"
              + (f" ({len(comparison.unreliable)} unreliable, not judged)" if comparison.unreliable else ""))


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.gate import comparable
    from focalbench.bench.report import ReportError, read_report

    check_slowdown(args)
    try:
        baseline, new = read_report(args.baseline), read_report(args.new)
    except ReportError as error:
        raise UsageError(str(error)) from error
    reason = comparable(baseline, new)
    if reason is not None and not args.same_machine:
        raise UsageError(f"refusing to gate across machines: {reason} (--same-machine overrides)")
    comparison = compared(baseline, new, args, args.impls)
    print_comparison(comparison, args.max_slowdown)
    return comparison.exit_code
