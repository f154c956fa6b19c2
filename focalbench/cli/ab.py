"""``focalbench ab``: the gate without a baseline, two commits timed here in alternating rounds."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from focalbench.cli.compare import add_allowances, check_slowdown, compared, print_comparison
from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import add_family, family_of, writable_directory

__all__ = ["add_arguments", "run"]

HELP = "gate without a baseline: two commits timed here in alternating rounds"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, metavar="REF",
                        help="commit to compare against (e.g. HEAD~1) in this directory's repository")  # fmt: skip
    parser.add_argument("--new", metavar="REF", help="default: this checkout as installed")
    parser.add_argument("--rounds", type=int, default=3, help="quick runs per side (default 3)")
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME",
                        help="repeatable, of one family; default: every family's gated rows, as focalbench gate "
                             "--mode ab times them")  # fmt: skip
    add_family(parser, "the family of the --impl (needed for a module:attr without focalbench_family)")
    add_allowances(parser)
    parser.add_argument("--output", help="directory for the two merged reports (default: a temporary one)")


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.ab import ABError, install_commit, run_alternating
    from focalbench.bench.report import write_new

    check_slowdown(args)
    if args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1. Got: {args.rounds}")
    if not args.impls:  # what ships: every family's product, one verdict (focalbench gate in A/B mode)
        from focalbench.cli import gate

        return gate.run(argparse.Namespace(mode="ab", base=args.base, new=args.new, rounds=args.rounds, families=None,
                                           impl=None, max_slowdown=args.max_slowdown,
                                           max_mean_slowdown=args.max_mean_slowdown, attempts=1, record=None,
                                           root="."))  # fmt: skip
    impls = args.impls
    output = writable_directory(args.output or tempfile.mkdtemp(prefix="focalbench-ab-"), "--output")
    family = family_of(args.family)
    run_args = ["--quick", "--skip-checks", *(["--family", family] if family else []),
                *[a for name in impls for a in ("--impl", name)]]  # fmt: skip
    try:
        work = Path(tempfile.mkdtemp(prefix="focalbench-ab-work-"))
        eprint(f"focalbench ab: installing {args.base} (and {args.new or 'this checkout'}) ...")
        base_site = install_commit(args.base, work)
        new_site = install_commit(args.new, work) if args.new else None
        base, new = run_alternating(
            base_site, new_site, work, args.rounds, run_args, progress=lambda message: eprint("  " + message)
        )
    except ABError as error:
        raise UsageError(str(error)) from error
    for side, document in (("base", base), ("new", new)):
        document.setdefault("settings", {})["ab_side"] = side
        write_new(output / f"ab-{side}.json", json.dumps(document, indent=1) + "\n")
    eprint(f"  merged reports in {output}")
    comparison = compared(base, new, args, impls)
    print_comparison(comparison, args.max_slowdown)
    return comparison.exit_code
