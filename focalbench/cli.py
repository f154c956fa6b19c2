"""``focalbench``: argument parsing only. Subcommands: list | check | run | compare | merge | accuracy | experiment |
plot | fingerprint."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]

DTYPES = ("float16", "bfloat16", "float32", "float64")
CPU_TARGETS = ("native", "x86-64-v2", "x86-64-v3", "x86-64-v4", "generic")  # as focalbench.native.TARGETS
FAMILIES = ("softmax", "sigmoid")  # as focalbench.registry.FAMILIES


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="focalbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="registered implementations: devices, dtypes, capabilities, known defects")
    listing.add_argument("--family", choices=FAMILIES, help="only this loss family's (default: both)")

    check = sub.add_parser("check", help="run the correctness checks, print the conformance matrix")
    check.add_argument("impls", nargs="*", metavar="NAME|module:attr", help="default: every registered one")
    check.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    check.add_argument("--check", action="append", dest="checks", metavar="CHECK", help="only these checks")
    check.add_argument("-v", "--verbose", action="store_true", help="print every unexpected outcome's detail")
    check.add_argument("--family", choices=FAMILIES, help="only this loss family's (default: both, a matrix each)")

    run = sub.add_parser("run", help="time implementations against F.cross_entropy (sigmoid: BCE) and write a report")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default cpu")
    run.add_argument("--family", choices=FAMILIES,
                     help="the loss family to time (default: the named implementations', else softmax)")  # fmt: skip
    run.add_argument("--impl", action="append", dest="impls", metavar="NAME|module:attr",
                     help="repeatable; default: every implementation registered for the device")  # fmt: skip
    run.add_argument("--dtype", action="append", dest="dtypes", choices=DTYPES,
                     help="repeatable; default float32 (cuda: float32 and bfloat16)")  # fmt: skip
    run.add_argument(
        "--shape",
        action="append",
        dest="shapes",
        metavar="NAME|RxC",
        help="repeatable: yolov2_voc, coco_rows, imagenet, segmentation, sweep_<rows>x20 (sigmoid: retinanet_rows, "
        "retinanet_dense), 4096x20",
    )
    run.add_argument("--mode", action="append", dest="modes", choices=("forward", "backward", "forward+backward"),
                     help="repeatable; default all three (quick: forward+backward)")  # fmt: skip
    run.add_argument("--gamma", action="append", dest="gammas", type=float, help="repeatable; default 2.0")
    run.add_argument("--rounds", type=int, help="samples per implementation (default 15, quick 7)")
    run.add_argument("--quick", action="store_true", help="representative shapes, forward+backward, float32 only")
    run.add_argument("--skip-checks", action="store_true", help="do not run the correctness checks")
    run.add_argument("--output", default="results", help="directory for the JSON and markdown reports")
    run.add_argument("--cpu-target", choices=CPU_TARGETS,
                     help="instruction set of the C kernel (sets FOCALBENCH_CPU_TARGET; default native)")  # fmt: skip

    compare = sub.add_parser("compare", help="gate: compare a new report with a baseline report")
    compare.add_argument("baseline")
    compare.add_argument("new")
    compare.add_argument("--max-slowdown", type=float, default=0.5, help="allowed growth of a ratio (0.5 = 50%%)")
    compare.add_argument("--impl", action="append", dest="impls", metavar="NAME",
                         help="repeatable: gate only these implementations' timings (default: all)")  # fmt: skip
    compare.add_argument("--same-machine", action="store_true",
                         help="compare even if the reports name different machine kinds or builds (say so only when "
                              "both ran on one machine, e.g. an A/B run in one job)")  # fmt: skip

    merge = sub.add_parser("merge", help="a gate baseline: per-row medians of several reports")
    merge.add_argument("reports", nargs="+", metavar="REPORT")
    merge.add_argument("--output", required=True, help="file to write (must not exist)")
    merge.add_argument("--same-machine", action="store_true", help="merge reports that do not name their machine")

    accuracy = sub.add_parser("accuracy", help="worst relative error vs an arbitrary-precision oracle, by logit gap")
    accuracy.add_argument("--impl", action="append", dest="impls", metavar="NAME|module:attr")
    accuracy.add_argument("--family", choices=FAMILIES,
                          help="the loss family (default: the named implementations', else softmax)")  # fmt: skip
    accuracy.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    accuracy.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    accuracy.add_argument("--output", default="results", help="directory for the JSON and markdown tables")

    plot = sub.add_parser("plot", help="figures (PNG and SVG) from speed and accuracy reports, and the paper's Fig. 1")
    plot.add_argument("reports", nargs="+", metavar="REPORT", help="focalbench run / focalbench accuracy JSON files")
    plot.add_argument("--output", required=True, metavar="DIR", help="directory for the figures")

    sub.add_parser("fingerprint", help="print this machine's fingerprint (the name of its gate baseline)")

    ab = sub.add_parser("ab", help="gate without a baseline: two commits timed here in alternating rounds")
    ab.add_argument("--base", required=True, metavar="REF",
                    help="commit to compare against (e.g. HEAD~1) in the current directory's repository")  # fmt: skip
    ab.add_argument("--new", metavar="REF", help="default: this checkout as installed")
    ab.add_argument("--rounds", type=int, default=3, help="quick runs per side (default 3)")
    ab.add_argument("--impl", action="append", dest="impls", metavar="NAME", help="repeatable; default fused")
    ab.add_argument("--max-slowdown", type=float, default=0.5, help="allowed growth of a ratio (0.5 = 50%%)")
    ab.add_argument("--output", help="directory for the two merged reports (default: a temporary one)")

    experiment = sub.add_parser("experiment", help="reproducible training experiments on the CPU")
    experiment.add_argument("name", choices=("soft-gamma",), help="soft-gamma: gamma schedules vs fixed gamma 2")
    experiment.add_argument("--quick", action="store_true", help="3 seeds instead of 20 (same task and budget)")
    experiment.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1, N >= 2 (default 20, quick 3)")
    experiment.add_argument("--output", default="results", help="directory for the JSON and markdown reports")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "cpu_target", None):  # before anything builds the kernel
        os.environ["FOCALBENCH_CPU_TARGET"] = args.cpu_target
    if getattr(args, "device", "cpu") == "cuda":
        import torch

        if not torch.cuda.is_available():
            eprint("focalbench: --device cuda, but torch.cuda.is_available() is False (no GPU or a CPU-only torch)")
            return 2
    from focalbench import commands  # imports torch: after argument errors have had their say

    try:
        return getattr(commands, f"cmd_{args.command}")(args)
    except commands.UsageError as error:
        eprint(f"focalbench {args.command}: {error}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
