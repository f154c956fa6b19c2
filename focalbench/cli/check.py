"""``focalbench check``: the correctness checks, a conformance matrix per loss family."""

from __future__ import annotations

import argparse

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import DEVICES, add_family, family_of, resolve

__all__ = ["add_arguments", "check_matrix", "run"]

HELP = "run the correctness checks, print the conformance matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("impls", nargs="*", metavar="NAME|module:attr", help="default: every registered one")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--check", action="append", dest="checks", metavar="CHECK", help="only these checks")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every unexpected outcome's detail")
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


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from focalbench.arena.family import families

    chosen = family_of(args.family)
    impls = resolve(args.impls, args.device, chosen)
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
        for impl, check, case, outcome in unexpected if args.verbose else unexpected[:10]:
            print(f"  {impl} / {check} / {case}: {outcome.status}: {outcome.detail}")
        return 1
    print("\nverdicts: pass = every applicable case holds; xfail = fails only as a declared known defect; n/a = not "
          "applicable by declared capabilities")  # fmt: skip
    return 0
