"""``focalbench list``: the registered implementations, with their devices, dtypes, capabilities and known defects,
one table per family (``-v``: each known defect's reason)."""

from __future__ import annotations

import argparse
import textwrap

from focalbench.cli.options import add_family, family_of

__all__ = ["add_arguments", "run"]

HELP = "registered implementations: devices, dtypes, capabilities, known defects"

#: The widest line the listing prints: a terminal's, with room for its prompt.
WIDTH = 120


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="print the reason of every known defect")
    add_family(parser, "only this loss family's (default: every family's, a table each)")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from focalbench.arena.core import DTYPE_NAMES
    from focalbench.arena.family import families
    from focalbench.arena.registry import get_implementation, list_implementations, unavailable_implementations

    chosen = family_of(args.family)
    for family in [chosen] if chosen else list(families()):
        impls = [get_implementation(name) for name in list_implementations(family)]
        rows = [[impl.name, ", ".join(impl.devices), ", ".join(DTYPE_NAMES[d] for d in impl.dtypes),
                 ", ".join(sorted(impl.capabilities)) or "-",
                 f"{len(impl.known_defects)}: " + ", ".join(sorted({d.check for d in impl.known_defects}))
                 if impl.known_defects else "none"]
                for impl in impls]  # fmt: skip
        print(f"\n{family} family:")
        headers = ["implementation", "devices", "dtypes", "capabilities", "known defects (in checks)"]
        # the defects column takes what the others leave of the terminal's width (two spaces between columns; tabulate
        # makes a column at least its header plus 2 wide)
        fixed = sum(max(len(headers[i]) + 2, *(len(r[i]) for r in rows)) for i in range(3))
        defects = max(24, WIDTH - fixed - 26 - 2 * 4)
        print(tabulate(rows, headers=headers, maxcolwidths=[None, None, None, 26, defects]))
        if args.verbose:
            for impl in impls:
                for defect in impl.known_defects:
                    print(f"  {impl.name} / {defect.check}: {defect.reason}")
    unavailable = unavailable_implementations(chosen)
    if unavailable:
        print()
    for name, reason in unavailable.items():  # a reason names a package and its install command: wrapped, never cut
        print(textwrap.fill(f"{name}: unavailable here: {reason}", WIDTH, subsequent_indent="    ",
                            break_on_hyphens=False))  # fmt: skip
    if not args.verbose:
        print("\n-v: the reason of every known defect")
    return 0
