"""``focalbench list``: the registered implementations, with their devices, dtypes, capabilities and known defects."""

from __future__ import annotations

import argparse

from focalbench.cli.options import add_family, family_of

__all__ = ["add_arguments", "run"]

HELP = "registered implementations: devices, dtypes, capabilities, known defects"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_family(parser, "only this loss family's (default: every family's)")


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from focalbench.arena.registry import get_implementation, list_implementations, unavailable_implementations

    rows = []
    for name in list_implementations(family_of(args.family)):
        impl = get_implementation(name)
        rows.append(
            [
                name,
                impl.family,
                ", ".join(impl.devices),
                ", ".join(str(d).replace("torch.", "") for d in impl.dtypes),
                ", ".join(sorted(impl.capabilities)),
                "\n".join(f"{d.check}: {d.reason}" for d in impl.known_defects) or "-",
            ]
        )
    print(tabulate(rows, headers=["implementation", "family", "devices", "dtypes", "capabilities", "known defects"]))
    for name, reason in unavailable_implementations().items():
        print(f"\n{name}: unavailable here: {reason}")
    return 0
