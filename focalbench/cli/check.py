"""``focalbench check``: the correctness checks, a conformance matrix per loss family."""

from __future__ import annotations

import argparse
import re

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import DEVICES, add_family, family_of, resolve

__all__ = ["add_arguments", "check_matrix", "grouped", "run"]

HELP = "run the correctness checks, print the conformance matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("impls", nargs="*", metavar="NAME|module:attr", help="default: every registered one")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--check", action="append", dest="checks", metavar="CHECK",
                        help="only these checks (repeat it; an unknown name prints every name; docs/checks.md)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print every unexpected outcome (default: alike ones as one line)"
    )
    add_family(parser, "only this loss family's (default: every family's, a matrix each)")


def check_matrix(impls: list, device: str, checks, progress=None) -> tuple[dict, dict]:
    """(verdicts {impl: {check: verdict}}, full matrix with per-case outcomes)."""
    from focalbench.arena.core import run_matrix, summarize

    matrix = run_matrix(impls, checks, device, progress)
    verdicts = {
        impl: {check: summarize(o for _, o in outcomes) for check, outcomes in by_check.items()}
        for impl, by_check in matrix.items()
    }
    return verdicts, matrix


#: How many groups of unexpected outcomes are printed without -v, and how many case ids a group names.
SHOWN_GROUPS, SHOWN_CASES = 10, 3


#: A number in a detail (an integer, a decimal, a float in e-notation): details alike but for their numbers group.
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?|\binf\b|\bnan\b")


def grouped(unexpected: list[tuple[str, str, str, object]], checks_run: dict[str, int]) -> list[str]:
    """One line per distinct (implementation, status, detail) among ``unexpected`` ``(impl, check, case, outcome)``,
    details that differ only in their numbers taken as one (the first one's shown): one bug, one line, with its count
    and its first cases. ``checks_run``: how many checks each implementation ran (a line that covers them all says
    "every check")."""
    groups: dict[tuple[str, str, str], list[tuple[str, str, str]]] = {}
    for impl, check, case, outcome in unexpected:
        key = (impl, outcome.status, NUMBER.sub("#", outcome.detail))
        groups.setdefault(key, []).append((check, case, outcome.detail))
    lines = []
    for (impl, status, _), where in groups.items():
        detail = where[0][2]
        if len(where) == 1:
            lines.append(f"  {impl} / {where[0][0]} / {where[0][1]}: {status}: {detail}")
            continue
        checks = list(dict.fromkeys(check for check, _, _ in where))
        if len(checks) == 1:
            scope, first = checks[0], [case for _, case, _ in where[:SHOWN_CASES]]
        else:
            scope = "every check" if len(checks) == checks_run.get(impl) else f"{len(checks)} checks"
            first = [f"{check}/{case}" for check, case, _ in where[:SHOWN_CASES]]
        alike = "" if all(d == detail for _, _, d in where) else "the first's; the others differ in numbers; "
        more = ", ..." if len(where) > SHOWN_CASES else ""
        lines.append(f"  {len(where)} cases of {impl} / {scope}: {status}: {detail} ({alike}first: {', '.join(first)}"
                     f"{more})")  # fmt: skip
    return lines


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from focalbench.arena.family import families

    chosen = family_of(args.family)
    impls = resolve(args.impls, args.device, chosen)
    others = [f"{impl.name} is a {impl.family} focal loss" for impl in impls if chosen and impl.family != chosen]
    if others:
        raise UsageError(f"--family {chosen} must match the named implementations. Got: {'; '.join(others)}")
    every = {name: check for family in families().values() for name, check in family.all_checks().items()}
    try:
        checks = [every[name] for name in args.checks] if args.checks else list(every.values())
    except KeyError as error:
        raise UsageError(f"--check must be one of {', '.join(every)}. Got: {error.args[0]!r}") from error
    matrix = {}
    names = [f for f in families() if any(i.family == f for i in impls) and any(c.family == f for c in checks)]
    if not names:
        raise UsageError("--check must name checks of the implementations' family. Got: "
                         f"{', '.join(c.name for c in checks)} for {', '.join(i.name for i in impls)}")  # fmt: skip
    for family in names:  # a matrix per loss family: its implementations through its checks
        verdicts, by_family = check_matrix(
            [i for i in impls if i.family == family], args.device, [c for c in checks if c.family == family],
            progress=lambda impl, check, verdict: eprint(f"  {impl:18s} {check:30s} {verdict}"),
        )  # fmt: skip
        matrix.update(by_family)
        columns = list(next(iter(verdicts.values())).keys()) if verdicts else []
        if len(names) > 1:
            print(f"\n{family} family:")
        print(tabulate([[impl] + [v[c] for c in columns] for impl, v in verdicts.items()], headers=["", *columns]))
    unexpected = [
        (impl, check, case, outcome)
        for impl, by_check in matrix.items()
        for check, outcomes in by_check.items()
        for case, outcome in outcomes
        if outcome.unexpected
    ]
    if unexpected:
        print(f"\n{len(unexpected)} unexpected outcome(s) (fail, or a known defect that no longer reproduces):")
        if args.verbose:
            for impl, check, case, outcome in unexpected:
                print(f"  {impl} / {check} / {case}: {outcome.status}: {outcome.detail}")
            return 1
        ran = {impl: sum(1 for outcomes in by_check.values() if any(o.status != "n/a" for _, o in outcomes))
               for impl, by_check in matrix.items()}  # fmt: skip
        lines = grouped(unexpected, ran)
        print("\n".join(lines[:SHOWN_GROUPS]))
        if len(lines) > SHOWN_GROUPS:
            print(f"  ... and {len(lines) - SHOWN_GROUPS} more (-v prints every outcome)")
        return 1
    print("\nverdicts: pass = every applicable case holds; xfail = fails only as a declared known defect; n/a = not "
          "applicable by declared capabilities")  # fmt: skip
    return 0
