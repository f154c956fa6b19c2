"""``focalbench experiment``: reproducible training experiments on the CPU (soft-gamma)."""

from __future__ import annotations

import argparse

from focalbench.cli.console import UsageError, eprint

__all__ = ["add_arguments", "run"]

HELP = "reproducible training experiments on the CPU"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=("soft-gamma",), help="soft-gamma: gamma schedules vs fixed gamma 2")
    parser.add_argument("--quick", action="store_true", help="3 seeds instead of 20 (same task and budget)")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1, N >= 2 (default 20, quick 3)")
    parser.add_argument("--output", default="results", help="directory for the JSON and markdown reports")


def run(args: argparse.Namespace) -> int:
    # imported here: scipy and the training code are not needed by the other subcommands
    from focalbench.experiments.report import paired_table, summary_table, write_soft_gamma_report
    from focalbench.experiments.soft_gamma import run_soft_gamma, seed_list

    try:
        seeds = seed_list(args.seeds, args.quick)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--{error}") from error
    eprint(f"focalbench experiment {args.name}: {len(seeds)} seed(s), one line per run")
    document = run_soft_gamma(seeds, quick=args.quick, progress=eprint)
    json_path, md_path = write_soft_gamma_report(document, args.output)
    for alpha in document["settings"]["alphas"]:
        print(f"alpha = {alpha}: mean ± std over {len(seeds)} seeds\n{summary_table(document, alpha, 'simple')}\n")
    print(f"paired differences against {document['settings']['reference']}:\n{paired_table(document, 'simple')}")
    print(f"\nreport: {json_path}\n        {md_path}")
    return 0
