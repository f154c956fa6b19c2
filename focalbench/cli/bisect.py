"""``focalbench bisect``: the first commit of a range where one row (implementation, shape) became slower."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import add_family, family_of

__all__ = ["add_arguments", "run"]

HELP = "find the commit where a row (implementation, shape) became slower: git bisect's search, each step timed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--good", required=True, metavar="REF", help="a commit where the row is fast")
    parser.add_argument("--bad", default="HEAD", metavar="REF", help="a later commit where it is slow (default HEAD)")
    parser.add_argument("--impl", metavar="NAME|module:attr",
                        help="as each commit names it, e.g. focalbench:focal_loss (default: the recommended one)",
                        )  # fmt: skip
    add_family(parser, "the row's family (default: the registered implementation's; needed for a module:attr)")
    parser.add_argument("--shape", required=True, metavar="NAME",
                        help="one of the family's shapes (e.g. coco_rows) or like 4096x20")  # fmt: skip
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="growth of the ratio to the baseline that makes a commit bad (default 0.5)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (default 1)")
    parser.add_argument("--pairs", type=int, default=3, help="probe processes of each side per step (default 3)")
    parser.add_argument("--rounds", type=int, default=7, help="timed calls per probe (default 7)")


def _family(args: argparse.Namespace) -> str:
    chosen = family_of(args.family)
    if chosen is not None:
        return chosen
    if args.impl and ":" not in args.impl:
        from focalbench.arena.registry import get_implementation

        try:
            return get_implementation(args.impl).family
        except ValueError:
            pass  # a name only old commits know: its family must be named
    if args.impl:
        from focalbench.arena.family import families

        products = {family.product: name for name, family in families().items() if family.product}
        if args.impl in products:  # a family's public function: its family is known
            return products[args.impl]
        raise UsageError(f"--family must name the family of {args.impl} (one of {', '.join(families())}): no family is "
                         "assumed. Got: none")  # fmt: skip
    return "softmax"  # the default row: the softmax product's


def run(args: argparse.Namespace) -> int:
    from focalbench.arena.family import get_family
    from focalbench.bench.bisect import BisectError, Row, bisect

    for option, value, least in (("--threads", args.threads, 1), ("--pairs", args.pairs, 1),
                                 ("--rounds", args.rounds, 3)):  # fmt: skip
        if value < least:
            raise UsageError(f"{option} must be >= {least}. Got: {value}")
    if not 0 < args.threshold < 100:
        raise UsageError(f"--threshold must be a number in (0, 100). Got: {args.threshold}")
    family = _family(args)
    row = Row(family, args.impl or get_family(family).recommended, args.shape, args.threads)
    work = Path(tempfile.mkdtemp(prefix="focalbench-bisect-"))
    eprint(f"focalbench bisect: {row.impl} ({family}) at {row.shape}, {row.threads} thread(s), "
           f"{args.good}..{args.bad}, bad beyond +{100 * args.threshold:.0f}%")  # fmt: skip
    try:
        outcome = bisect(row, args.good, args.bad, work, args.threshold, args.pairs, args.rounds,
                         progress=lambda message: eprint("  " + message))  # fmt: skip
    except BisectError as error:
        raise UsageError(str(error)) from error
    print(f"first bad commit: {outcome.first_bad} {outcome.subject}")
    print(f"{len(outcome.steps)} step(s) over {outcome.candidates} commit(s), {outcome.seconds / 60:.1f} min")
    for step in outcome.steps:
        print("  " + step.line())
    return 0
