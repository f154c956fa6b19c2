"""``focalbench history``: the gated rows timed at every commit of a range, stored per machine kind, and their steps."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from focalbench.cli.console import UsageError, eprint

__all__ = ["add_arguments", "run"]

HELP = "time every family's gated rows at each commit of a range (stored per machine kind) and name the steps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "range",
        nargs="?",
        metavar="RANGE",
        help="commits as git names them: A..B (or one ref: every commit up to it); needed unless --no-measure",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("results/history"),
        metavar="DIR",
        help="the history's folder, a subfolder per machine kind (default results/history)",
    )
    parser.add_argument(
        "--no-measure",
        action="store_true",
        help="time nothing: name the steps of what the folder holds for this machine kind",
    )
    parser.add_argument(
        "--kind",
        metavar="FINGERPRINT",
        help="with --no-measure: another machine kind's subfolder (default this machine's)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads while timing (default 1)")
    parser.add_argument("--rounds", type=int, default=15, help="alternating turns of each row per commit (default 15)")
    parser.add_argument(
        "--alpha",
        type=float,
        default=0.01,
        help="a row's false-step rate under no change (Bonferroni over a series; default 0.01)",
    )


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.history import (
        HistoryError,
        commits_of,
        find_steps,
        load,
        machine_kind,
        measure_range,
        series,
    )

    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1. Got: {args.threads}")
    if args.rounds < 5:
        raise UsageError(f"--rounds must be >= 5. Got: {args.rounds}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be in (0, 1). Got: {args.alpha}")
    if args.kind and not args.no_measure:
        raise UsageError(f"--kind reads another machine kind's history: it needs --no-measure. Got: --kind {args.kind}")
    if args.range is None and not args.no_measure:
        raise UsageError("RANGE must name the commits to time (e.g. HEAD~20..HEAD; one ref means every commit up to "
                         "it), or --no-measure reads what is stored. Got: neither")  # fmt: skip
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output must be a directory. Got: {args.output} (a file)")
    try:
        if args.no_measure:
            place = args.output / (args.kind or machine_kind(args.threads)[0])
        else:
            commits_of(args.range)  # a bad range is one line before anything is made
            eprint(f"focalbench history: {args.range} into {args.output}, {args.threads} thread(s)")
            work = Path(tempfile.mkdtemp(prefix="focalbench-history-"))
            place = measure_range(args.range, args.output, work, threads=args.threads, rounds=args.rounds,
                                  progress=lambda message: eprint("  " + message))  # fmt: skip
        records = load(place)
    except HistoryError as error:
        raise UsageError(str(error)) from error
    rows = sorted({key for record in records for key in record["rows"]})
    print(f"{len(records)} commit(s) of machine kind {place.name}, {len(rows)} row(s)")
    found = 0
    for row in rows:
        points = series(records, row)
        for step in find_steps(points, row, args.alpha):
            print("  step " + step.line())
            found += 1
    print(f"{found} step(s) (adjacent measurements: turns differ by Mann-Whitney, change beyond the noise between "
          f"measurements and >= 10 %; alpha {args.alpha} Bonferroni over each row's series)")  # fmt: skip
    return 0
