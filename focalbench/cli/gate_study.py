"""``focalbench gate-study``: the gate's false-alarm rate on unchanged code and its power against a uniform and a
one-shape slowdown, each repeated, measured here (run it in a clone of the repository)."""

from __future__ import annotations

import argparse
import datetime as _dt
from pathlib import Path

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import writable_directory

__all__ = ["add_arguments", "run"]

HELP = "the gate's own study: false alarms on unchanged code, catches of a uniform and of a one-shape slowdown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("baseline", "ab"), default="baseline",
                        help="against this machine kind's baseline, or A/B against HEAD (default: baseline)",
                        )  # fmt: skip
    parser.add_argument("--unchanged", type=int, default=20, metavar="N", help="runs of unchanged code (default 20)")
    parser.add_argument("--uniform", type=int, default=5, metavar="N", help="runs of every call 1.3x (default 5)")
    parser.add_argument("--one-shape", type=int, default=5, metavar="N",
                        help="runs of 2x at the family's last shape only (default 5)")  # fmt: skip
    parser.add_argument("--family", action="append", dest="families", metavar="NAME",
                        help="repeatable: the families whose recommended implementation is slowed, one study each "
                             "(default: every registered family)")  # fmt: skip
    parser.add_argument("--repo", default=".", help="the repository whose HEAD is studied (default: here)")
    parser.add_argument("--output", default="results", help="directory for the study's JSON")


def run(args: argparse.Namespace) -> int:
    from focalbench.bench import study
    from focalbench.bench.environment import environment
    from focalbench.bench.report import write_new

    counts = {"unchanged": args.unchanged, "uniform-1.3x": args.uniform, "one-shape-2x": args.one_shape}
    for name, count in counts.items():
        if count < 0:
            raise UsageError(f"--{name.split('-')[0] if name != 'one-shape-2x' else 'one-shape'} must be >= 0. "
                             f"Got: {count}")  # fmt: skip
    repo = Path(args.repo)
    if not (repo / ".git").exists() or not (repo / ".ci" / "gate").exists():
        raise UsageError(f"--repo must be a clone of focalbench (with .git and .ci/gate). Got: {repo}")
    output = writable_directory(args.output, "--output")
    from focalbench.arena.family import families as registered
    from focalbench.cli.options import family_of

    chosen = [family_of(name) for name in args.families] if args.families else list(registered())
    runs = {name: count for name, count in counts.items() if count}
    import os

    import torch

    # the study is of the gate, which measures at .ci/gate's thread count: its fingerprint names the study
    torch.set_num_threads(int(os.environ.get("FOCALBENCH_GATE_THREADS", "1")))
    for family in chosen:
        document = study.study(repo.resolve(), args.mode, runs, family, progress=eprint)
        env = environment("cpu")
        document["environment"] = env
        document["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        print(f"{family} ({document['implementation']}), {args.mode} mode:")
        for line in study.summary_lines(document):
            print("  " + line)
        stamp = document["created"].replace(":", "").replace("-", "")[:15]
        name = f"gate-study-{family}-{args.mode}-{env['machine_fingerprint']}-{stamp}.json"
        path = write_new(output / name, study.dumps(document))
        print(f"  study: {path}")
    return 0
