"""What each ``focalbench`` subcommand does, given parsed arguments; returns the exit code."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

from focalbench.accuracy import sigmoid_sweep, sweep
from focalbench.checks import CHECKS, run_matrix, summarize
from focalbench.cli import eprint
from focalbench.environment import environment
from focalbench.gate import Comparison, comparable, compare_reports, merge_reports
from focalbench.registry import (
    FAMILIES,
    Implementation,
    get_implementation,
    list_implementations,
    load_implementation,
    unavailable_implementations,
)
from focalbench.report import (
    ReportError,
    new_report,
    read_report,
    results_table,
    write_document,
    write_new,
    write_report,
)
from focalbench.runner import MODES, WORKLOADS, run_case, select_shapes
from focalbench.timing import copy_bandwidth

__all__ = [
    "UsageError", "cmd_ab", "cmd_accuracy", "cmd_check", "cmd_compare", "cmd_experiment", "cmd_fingerprint", "cmd_list",
    "cmd_merge", "cmd_plot", "cmd_run",
]  # fmt: skip


class UsageError(ValueError):
    """A bad argument value: reported in one line, exit 2."""


def _resolve(names: list[str] | None, device: str, family: str | None = None) -> list[Implementation]:
    """The named implementations (a user's undeclared ``module:attr`` taken as a loss of ``family``), else the
    registered ones of ``family`` (every family's when None) that run on ``device``."""
    try:
        if names:
            return [load_implementation(name, family or "softmax") for name in names]
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error
    impls = [get_implementation(name) for name in list_implementations(family)]
    return [i for i in impls if device in i.devices and not i.extra.get("interpreted")]


def _one_family(args: argparse.Namespace, device: str) -> tuple[list[Implementation], str]:
    """The implementations of a run or an accuracy sweep and their one family: ``--family``, else the named
    implementations', else softmax."""
    impls = _resolve(args.impls, device, args.family or (None if args.impls else "softmax"))
    families = {impl.family for impl in impls}
    family = args.family or (families.pop() if len(families) == 1 else "softmax")
    others = [impl.name for impl in impls if impl.family != family]
    if others:
        raise UsageError(f"--impl must name implementations of one family ({family}). Got: {', '.join(others)} of "
                         "another")  # fmt: skip
    return impls, family


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_implementations(args.family):
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


def _check_matrix(impls: list[Implementation], device: str, checks=None, progress=None) -> tuple[dict, dict]:
    """(verdicts {impl: {check: verdict}}, full matrix with per-case outcomes)."""
    matrix = run_matrix(impls, checks, device, progress)
    verdicts = {
        impl: {check: summarize(o for _, o in outcomes) for check, outcomes in by_check.items()}
        for impl, by_check in matrix.items()
    }
    return verdicts, matrix


def cmd_check(args: argparse.Namespace) -> int:
    impls = _resolve(args.impls, args.device, args.family)
    try:
        checks = [CHECKS[name] for name in args.checks] if args.checks else list(CHECKS.values())
    except KeyError as error:
        raise UsageError(f"--check must be one of {', '.join(CHECKS)}. Got: {error.args[0]!r}") from error
    matrix = {}
    families = [f for f in FAMILIES if any(i.family == f for i in impls) and any(c.family == f for c in checks)]
    if not families:
        raise UsageError("--check must name checks of the implementations' family. Got: "
                         f"{', '.join(c.name for c in checks)} for {', '.join(i.name for i in impls)}")  # fmt: skip
    for family in families:  # a matrix per loss family: its implementations through its checks
        verdicts, by_family = _check_matrix(
            [i for i in impls if i.family == family], args.device, [c for c in checks if c.family == family],
            progress=lambda impl, check, verdict: eprint(f"  {impl:18s} {check:30s} {verdict}"),
        )  # fmt: skip
        matrix.update(by_family)
        names = list(next(iter(verdicts.values())).keys()) if verdicts else []
        if len(families) > 1:
            print(f"\n{family} family:")
        print(tabulate([[impl] + [v[c] for c in names] for impl, v in verdicts.items()], headers=["", *names]))
    unexpected = [
        (impl, check, case, outcome)
        for impl, by_check in matrix.items()
        for check, outcomes in by_check.items()
        for case, outcome in outcomes
        if outcome.unexpected
    ]
    if unexpected:
        print(f"\n{len(unexpected)} unexpected outcome(s) (fail, or a known defect that no longer reproduces):")
        for impl, check, case, outcome in unexpected if args.verbose else unexpected[:10]:
            print(f"  {impl} / {check} / {case}: {outcome.status}: {outcome.detail}")
        return 1
    print("\nverdicts: pass = every applicable case holds; xfail = fails only as a declared known defect; n/a = not "
          "applicable by declared capabilities")  # fmt: skip
    return 0


def _writable_directory(path: str, option: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there, before any measurement."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as error:
        raise UsageError(f"{option} must be a writable directory. Got: {path} ({error.strerror or error})") from error
    return directory


def cmd_run(args: argparse.Namespace) -> int:
    device = args.device
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1. Got: {args.rounds}")
    for gamma in args.gammas or []:
        if not math.isfinite(gamma) or gamma < 0:
            raise UsageError(f"--gamma must be a finite number >= 0. Got: {gamma}")
    impls, family = _one_family(args, device)
    try:
        shapes = select_shapes(args.shapes, args.quick, family)
    except ValueError as error:
        raise UsageError(str(error)) from error
    _writable_directory(args.output, "--output")
    default_dtypes = ["float32"] if (args.quick or device == "cpu") else ["float32", "bfloat16"]
    dtypes = [getattr(torch, d) for d in (args.dtypes or default_dtypes)]
    modes = args.modes or (["forward+backward"] if args.quick else list(MODES))
    gammas = args.gammas or [2.0]
    rounds = args.rounds if args.rounds is not None else (7 if args.quick else 15)
    sample_s = 0.02 if args.quick else 0.05
    for impl in impls:
        unsupported = [impl.supports(device=device, dtype=d) for d in dtypes]
        if any(unsupported):
            raise UsageError(next(u for u in unsupported if u))

    started = time.perf_counter()
    baseline = WORKLOADS[family].baseline
    eprint(f"focalbench run on {device}: {len(impls)} {family} implementation(s) + {baseline}, {len(shapes)} shape(s)")
    env = environment(device)
    env["bandwidth_gbps"] = copy_bandwidth(device)
    env["implementation_versions"] = {i.name: i.extra["version"] for i in impls if "version" in i.extra}
    eprint(f"  copy bandwidth {env['bandwidth_gbps']:.1f} GB/s, {env['threads']} thread(s)")
    rows = []
    for shape in shapes:
        for dtype in dtypes:
            for mode in modes:
                for gamma in gammas:
                    eprint(f"  {shape.name} {tuple(shape.shape)} {str(dtype)[6:]} {mode} gamma={gamma:g}")
                    rows += run_case(impls, shape, dtype, mode, gamma, device, rounds, sample_s, env["bandwidth_gbps"],
                                     family=family)  # fmt: skip
    checks = {}
    if not args.skip_checks:  # after the timings, so that a compiled implementation's compile time shows there
        eprint("  correctness checks ...")
        family_checks = [c for c in CHECKS.values() if c.family == family]
        checks, _ = _check_matrix(impls, device, family_checks)  # a user's module:attr too, judged by what it declares
    settings = {
        "rounds": rounds, "sample_s": sample_s, "quick": args.quick, "modes": modes, "gammas": gammas,
        "shapes": [s.name for s in shapes], "wall_s": round(time.perf_counter() - started, 1), "family": family,
    }  # fmt: skip
    report = new_report(env, rows, checks, settings)
    print(results_table(rows))
    json_path, md_path = write_report(report, args.output)
    print(f"\nreport: {json_path}\n        {md_path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    if not math.isfinite(args.max_slowdown) or args.max_slowdown < 0:
        raise UsageError(f"--max-slowdown must be a finite number >= 0. Got: {args.max_slowdown}")
    try:
        baseline, new = read_report(args.baseline), read_report(args.new)
    except ReportError as error:
        raise UsageError(str(error)) from error
    reason = comparable(baseline, new)
    if reason is not None and not args.same_machine:
        raise UsageError(f"refusing to gate across machines: {reason} (--same-machine overrides)")
    comparison = compare_reports(baseline, new, args.max_slowdown, args.impls)
    if not comparison.changes and args.impls:
        raise UsageError(f"--impl {', '.join(args.impls)}: no timing row of that name in both reports")
    _print_comparison(comparison, args.max_slowdown)
    return comparison.exit_code


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        reports = [read_report(path) for path in args.reports]
    except ReportError as error:
        raise UsageError(str(error)) from error
    path = Path(args.output)
    if path.exists():
        raise UsageError(f"--output must be a new file (reports are never overwritten). Got: existing {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        merged = merge_reports(reports, same_machine=args.same_machine)
    except ValueError as error:
        raise UsageError(str(error)) from error
    written = write_new(path, json.dumps(merged, indent=1) + "\n")
    print(f"merged {len(reports)} report(s) into {written}")
    return 0


def _print_comparison(comparison: Comparison, max_slowdown: float) -> None:
    print(comparison.table())
    if comparison.unmatched:
        print(f"\n{comparison.unmatched} row(s) present in only one report (not compared)")
    for change in comparison.regressions:
        where = " / ".join(str(k) for k in change.key if k)
        print(f"REGRESSION {where}: ratio to cross_entropy {change.old_ratio:.2f} -> {change.new_ratio:.2f} "
              f"({100 * change.change:+.0f}% > {100 * max_slowdown:.0f}%)")  # fmt: skip
    for impl, check, old, verdict in comparison.broken_checks:
        print(f"CHECK BROKEN {impl} / {check}: {old} -> {verdict}")
    if comparison.exit_code == 0:
        print(f"\nno regression beyond {100 * max_slowdown:.0f}% in {len(comparison.changes)} compared row(s)")


def cmd_ab(args: argparse.Namespace) -> int:
    from focalbench.ab import ABError, install_commit, run_alternating

    if not math.isfinite(args.max_slowdown) or args.max_slowdown < 0:
        raise UsageError(f"--max-slowdown must be a finite number >= 0. Got: {args.max_slowdown}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1. Got: {args.rounds}")
    impls = args.impls or ["fused"]
    output = _writable_directory(args.output or tempfile.mkdtemp(prefix="focalbench-ab-"), "--output")
    run_args = ["--quick", "--skip-checks", *[a for name in impls for a in ("--impl", name)]]
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
    for side, report in (("base", base), ("new", new)):
        report.setdefault("settings", {})["ab_side"] = side
        write_new(output / f"ab-{side}.json", json.dumps(report, indent=1) + "\n")
    eprint(f"  merged reports in {output}")
    comparison = compare_reports(base, new, args.max_slowdown, impls)
    _print_comparison(comparison, args.max_slowdown)
    return comparison.exit_code


def cmd_fingerprint(args: argparse.Namespace) -> int:
    env = environment("cpu")
    print(env["machine_fingerprint"])
    eprint(f"{env['cpu']} ({env['cpu_id']}), {env['isa']}, {env['threads']} thread(s), torch {env['torch']}")
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    dtype = getattr(torch, args.dtype)
    impls, family = _one_family(args, args.device)
    impls = [i for i in impls if i.supports(dtype=dtype) is None]
    measure = sigmoid_sweep if family == "sigmoid" else sweep
    axis = "logit magnitude |x|" if family == "sigmoid" else "logit gap"
    rows = measure(impls, dtype=dtype, device=args.device, progress=lambda gap: eprint(f"  {axis} {gap:g} done"))
    by_impl = {impl.name: {r.gap: r for r in rows if r.implementation == impl.name} for impl in impls}
    gaps = sorted({r.gap for r in rows})
    headers = ["implementation"] + [f"{g:g}" for g in gaps]

    def cell(r):
        return f"{max(r.max_loss_error, r.max_grad_error):.1e}"

    table = [[name] + [cell(by_impl[name][g]) for g in gaps] for name in by_impl]
    text = tabulate(table, headers=headers)
    print(f"max relative error (loss and gradient) vs mpmath, {family} family, {args.dtype}, by {axis}:\n{text}")
    env = environment(args.device)
    document = {
        "schema_version": 1,
        "kind": "accuracy",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "dtype": args.dtype,
        "family": family,
        "rows": [r.as_dict() for r in rows],
    }
    sweep_text = (
        "the loss and of the gradient of every element against the mpmath oracle, by logit magnitude |x|, over both "
        "signs, targets 0 and 1 (confident and hopeless elements), gammas 0..5, alpha 0.25 and none"
        if family == "sigmoid"
        else "the loss (per element) and of the gradient (per row, max-norm) against the mpmath oracle, by logit gap, "
        "over shifts 0, +1e3, -3e3, gammas 0..5, C in 2, 20, 1000, confident and hopeless rows"
    )
    markdown = (
        f"# focalbench accuracy: {family} family, {args.dtype} on {args.device}\n\nCreated {document['created']} "
        f"from commit `{env.get('git_commit')}`. Maximum relative error of {sweep_text}; exact values below the "
        "dtype's smallest normal number are compared absolutely.\n\n"
        + tabulate(table, headers=headers, tablefmt="github")
        + "\n\nWorst case per implementation and gap:\n\n"
        + tabulate([[r.implementation, f"{r.gap:g}", f"{r.max_loss_error:.2e}", f"{r.max_grad_error:.2e}", r.worst]
                    for r in rows], headers=["implementation", "gap", "loss", "gradient", "where"], tablefmt="github")
        + "\n"
    )  # fmt: skip
    json_path, md_path = write_document(document, markdown, args.output, "accuracy")
    print(f"\nwritten: {json_path}\n         {md_path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from focalbench.loss import RECOMMENDED
    from focalbench.plot import PlotError, load_documents, write_figures

    try:
        documents = load_documents(args.reports)  # every file checked before anything is drawn
    except PlotError as error:
        raise UsageError(str(error)) from error
    output = _writable_directory(args.output, "--output")
    impls = [i for i in _resolve(None, "cpu", "softmax") if i.supports(dtype=torch.float64) is None]  # Fig. 1: softmax
    try:
        written = write_figures(documents, output, impls, RECOMMENDED, progress=eprint)
    except PlotError as error:
        raise UsageError(str(error)) from error
    print("\n".join(f"written: {path}" for path in written))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    # imported here: scipy and the training code are not needed by the other subcommands
    from focalbench.experiment import run_soft_gamma, seed_list
    from focalbench.experiment_report import paired_table, summary_table, write_soft_gamma_report

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
