"""``focalbench run``: time a family's implementations against its baseline (interleaved) and write a report."""

from __future__ import annotations

import argparse
import math
import sys
import time

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import CPU_TARGETS, DEVICES, DTYPES, add_family, one_family, writable_directory

__all__ = ["add_arguments", "run"]

HELP = "time implementations against F.cross_entropy (sigmoid: BCE) and write a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    add_family(parser, "the loss family to time (default: the named implementations', else softmax)")
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME|module:attr",
                        help="repeatable; default: every implementation registered for the device")  # fmt: skip
    parser.add_argument("--dtype", action="append", dest="dtypes", choices=DTYPES,
                        help="repeatable; default float32 (cuda: float32 and bfloat16)")  # fmt: skip
    parser.add_argument(
        "--shape",
        action="append",
        dest="shapes",
        metavar="NAME|RxC",
        help="repeatable: yolov2_voc, coco_rows, imagenet, segmentation, sweep_<rows>x20 (sigmoid: retinanet_rows, "
        "retinanet_dense), 4096x20",
    )
    parser.add_argument("--mode", action="append", dest="modes", choices=("forward", "backward", "forward+backward"),
                        help="repeatable; default all three (quick: forward+backward)")  # fmt: skip
    parser.add_argument("--param", action="append", dest="params", metavar="NAME=VALUE",
                        help="a value of one of the family's timed parameters (softmax, sigmoid: gamma), repeatable: "
                        "each value of a name is a case; default the family's (gamma 2.0)")  # fmt: skip
    parser.add_argument("--gamma", action="append", dest="gammas", type=float, help="--param gamma=VALUE")
    parser.add_argument("--rounds", type=int, help="samples per implementation (default 15, quick 7)")
    parser.add_argument("--quick", action="store_true", help="representative shapes, forward+backward, float32 only")
    parser.add_argument("--skip-checks", action="store_true", help="do not run the correctness checks")
    parser.add_argument("--output", default="results", help="directory for the JSON and markdown reports")
    parser.add_argument("--cpu-target", choices=CPU_TARGETS,
                        help="instruction set of the C kernel (sets FOCALBENCH_CPU_TARGET; default native)",
                        )  # fmt: skip



def _parameter_sets(args, family) -> list[dict[str, float]]:
    """Every combination of the values given for the family's timed parameters (``--param NAME=VALUE``,
    ``--gamma VALUE``), the family's defaults for the others.

    Raises:
        UsageError: a name the family does not time, or a value that is not a finite number >= 0.
    """
    given: dict[str, list[float]] = {}
    pairs = [("--gamma", "gamma", str(g)) for g in args.gammas or []]
    for text in args.params or []:
        name, sep, value = text.partition("=")
        if not sep:
            raise UsageError(f"--param must be NAME=VALUE. Got: {text!r}")
        pairs.append((f"--param {name.strip()}", name.strip(), value.strip()))
    for option, name, value in pairs:
        if name not in family.parameters:
            known = ", ".join(family.parameters) or "none"
            raise UsageError(f"{option}: the {family.name} family's timed parameters are {known}. Got: {name!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise UsageError(f"{option} must be a finite number >= 0. Got: {value}")
        given.setdefault(name, []).append(number)
    sets = [dict(family.parameters)]
    for name, values in given.items():
        sets = [{**s, name: v} for s in sets for v in values]
    return sets

def _progress(message: str | None) -> None:
    """One status line, rewritten in place on a terminal (``None`` ends it); nothing in a log."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write("\r\033[K" + (f"    {message}" if message else ""))
    sys.stderr.flush()


def _check_progress(impl: str, check: str, verdict: str) -> None:
    _progress(f"{impl} {check}: {verdict}")


#: Tensors of a shape's size a timing holds at once: the logits, their gradient, the implementations' work space
#: (probabilities, the baseline's own) and the correctness probe's float64 copies.
FOOTPRINT_COPIES = 6


def available_memory(device: str) -> int | None:
    """Bytes a run may allocate on ``device`` now (Linux's MemAvailable, or CUDA's free memory); None if unknown."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _fits_in_memory(shapes, dtypes, device: str, logits_elements=None) -> None:
    """A UsageError, before anything is allocated, for a shape whose run would not fit in the available memory
    (``logits_elements(shape)``: the logits a shape stands for, the family's; default its size)."""
    available = available_memory(device)
    if available is None:
        return
    widest = max(max(d.itemsize for d in dtypes), 4)  # half precision is computed in float32
    for shape in shapes:
        elements = shape.numel if logits_elements is None else logits_elements(shape)
        needed = FOOTPRINT_COPIES * elements * widest
        if needed > available:
            raise UsageError(
                f"--shape {shape.name} needs about {needed / 2**30:.1f} GiB on {device} ({FOOTPRINT_COPIES} tensors "
                f"of {elements:,} elements); {available / 2**30:.1f} GiB is available"
            )


def run(args: argparse.Namespace) -> int:
    import torch

    from focalbench.arena.family import get_family
    from focalbench.bench import environment, report, runner, timing
    from focalbench.cli.check import check_matrix

    device = args.device
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1. Got: {args.rounds}")
    impls, family = one_family(args, device)
    parameter_sets = _parameter_sets(args, get_family(family))
    try:
        shapes = runner.select_shapes(args.shapes, args.quick, family)
    except ValueError as error:
        raise UsageError(str(error)) from error
    writable_directory(args.output, "--output")
    default_dtypes = ["float32"] if (args.quick or device == "cpu") else ["float32", "bfloat16"]
    dtypes = [getattr(torch, d) for d in (args.dtypes or default_dtypes)]
    modes = args.modes or (["forward+backward"] if args.quick else list(runner.MODES))
    rounds = args.rounds if args.rounds is not None else (7 if args.quick else 15)
    sample_s = 0.02 if args.quick else 0.05
    for impl in impls:
        unsupported = [impl.supports(device=device, dtype=d) for d in dtypes]
        if any(unsupported):
            raise UsageError(next(u for u in unsupported if u))
    _fits_in_memory(shapes, dtypes, device, get_family(family).workload.logits_elements)

    started = time.perf_counter()
    kind = get_family(family)
    baseline = kind.workload.baseline
    eprint(f"focalbench run on {device}: {len(impls)} {family} implementation(s) + {baseline}, {len(shapes)} shape(s)")
    env = environment.environment(device)
    env["bandwidth_gbps"] = timing.copy_bandwidth(device)
    env["implementation_versions"] = {i.name: i.extra["version"] for i in impls if "version" in i.extra}
    eprint(f"  copy bandwidth {env['bandwidth_gbps']:.1f} GB/s, {env['threads']} thread(s)")
    env["free_cores"] = environment.free_cores()
    if env["free_cores"] is not None and env["threads"] > max(1.0, env["free_cores"] + 0.5):
        eprint(f"  warning: {env['threads']} thread(s) on about {env['free_cores']:.1f} free core(s) (the rest busy): "
               "threads wait on each other and ratios may be unreliable; set OMP_NUM_THREADS lower")  # fmt: skip
    rows = []
    cases = [(s, d, m, p) for s in shapes for d in dtypes for m in modes for p in parameter_sets]
    interrupted = False
    try:
        for number, (shape, dtype, mode, parameters) in enumerate(cases, 1):
            named = " ".join(f"{name}={value:g}" for name, value in parameters.items())
            eprint(f"  [{number}/{len(cases)}] {shape.name} {tuple(shape.shape)} {str(dtype)[6:]} {mode} {named}")
            rows += runner.run_case(impls, shape, dtype, mode, parameters, device, rounds, sample_s,
                                    env["bandwidth_gbps"], progress=_progress, family=family)  # fmt: skip
    except KeyboardInterrupt:  # keep what was measured: a report of the finished cases, marked interrupted
        interrupted = True
        _progress(None)
        if not rows:
            raise
        eprint(f"  interrupted: writing the {len(rows)} row(s) measured so far (no correctness checks)")
    _progress(None)
    checks = {}
    if not args.skip_checks and not interrupted:  # after the timings: a compiled implementation's compile time shows
        eprint("  correctness checks ...")
        # a user's module:attr too, judged by what it declares
        checks, _ = check_matrix(impls, device, kind.all_checks().values(), progress=_check_progress)
        _progress(None)
    settings = {
        "rounds": rounds, "sample_s": sample_s, "quick": args.quick, "modes": modes, "parameters": parameter_sets,
        "shapes": [s.name for s in shapes], "wall_s": round(time.perf_counter() - started, 1), "family": family,
    }  # fmt: skip
    if interrupted:
        settings["interrupted"] = True
    document = report.new_report(env, rows, checks, settings)
    print(report.results_table(rows))
    for line in report.unreliable_lines(rows):
        eprint(line)
    json_path, md_path = report.write_report(document, args.output)
    print(f"\nreport: {json_path}\n        {md_path}")
    return 130 if interrupted else 0
