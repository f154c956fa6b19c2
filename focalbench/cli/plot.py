"""``focalbench plot``: figures (PNG and SVG) from speed and accuracy reports, and the paper's Figure 1."""

from __future__ import annotations

import argparse

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import add_family, family_of, resolve, writable_directory

__all__ = ["add_arguments", "run"]

HELP = "figures (PNG and SVG) from speed and accuracy reports, and the paper's Fig. 1"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reports", nargs="+", metavar="REPORT", help="focalbench run / focalbench accuracy JSON files")
    parser.add_argument("--output", required=True, metavar="DIR", help="directory for the figures")
    add_family(parser, "the family whose implementations draw Figure 1 (default: the first report's)")


def run(args: argparse.Namespace) -> int:
    import torch

    from focalbench.arena.family import get_family
    from focalbench.bench.plot import PlotError, load_documents, write_figures

    try:
        documents = load_documents(args.reports)  # every file checked before anything is drawn
    except PlotError as error:
        raise UsageError(str(error)) from error
    output = writable_directory(args.output, "--output")
    family = family_of(args.family) or (documents[0].family if documents else "softmax")
    impls = [i for i in resolve(None, "cpu", family) if i.supports(dtype=torch.float64) is None]
    try:
        written = write_figures(documents, output, impls, get_family(family).recommended, progress=eprint,
                                family=family)  # fmt: skip
    except PlotError as error:
        raise UsageError(str(error)) from error
    print("\n".join(f"written: {path}" for path in written))
    return 0
