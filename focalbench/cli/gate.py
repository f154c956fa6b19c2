"""``focalbench gate``: the speed-regression gate over every family's product, one verdict for the run (.ci/gate)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from focalbench.cli.compare import add_allowances, change_line, check_slowdown
from focalbench.cli.console import UsageError, eprint

__all__ = ["add_arguments", "run"]

HELP = "speed gate: every family's product (float32, bfloat16) against this machine kind's baseline or a commit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=("auto", "baseline", "ab"), default="auto",
                        help="baseline: against results/baselines/<family>/<machine>.json; ab: against --base timed "
                             "here; auto (default): baseline where every gated family has one, else ab")  # fmt: skip
    parser.add_argument("--base", metavar="REF",
                        help="A/B: the commit to compare with (default: the last commit that changed a baseline, "
                             "else HEAD~1)")  # fmt: skip
    parser.add_argument("--new", metavar="REF", help="A/B: the commit under test (default: this checkout as installed)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B: quick runs per side (default 3)")
    parser.add_argument("--family", action="append", dest="families", metavar="NAME",
                        help="repeatable: gate only these families (default: every registered one)")  # fmt: skip
    parser.add_argument("--impl", metavar="NAME|module:attr",
                        help="gate this implementation (yours) in its family (--family) instead of the products")
    add_allowances(parser)
    parser.add_argument("--attempts", type=int, default=3,
                        help="measurements at most while rows stay unreliable (default 3)")  # fmt: skip
    parser.add_argument("--record", type=int, metavar="RUNS",
                        help="write this machine kind's baselines from RUNS quick runs (per-row medians) and exit")
    parser.add_argument("--root", default=".", help="the checkout whose results/baselines/ is read (default .)")


def _default_base(root: Path) -> str:
    last = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%H", "--", "results/baselines/"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return last if last and last != head else "HEAD~1"


def _line(change, baselines: dict[str, str], regressed: bool = False) -> str:
    return change_line(change, baselines.get(change.key[0], "the baseline"), regressed)


def _table(verdict) -> str:
    from tabulate import tabulate

    def mark(c) -> str:
        return "REGRESSION" if c in verdict.regressions else "UNRELIABLE" if c in verdict.unreliable else ""

    rows = [[*c.key, f"{c.old_ratio:.2f}", f"{c.new_ratio:.2f}", f"{100 * c.change:+.1f}%",
             "" if c.p_value is None else f"{c.p_value:.2g}", "" if c.adjusted_p is None else f"{c.adjusted_p:.2g}",
             mark(c)] for c in verdict.changes + verdict.summaries]  # fmt: skip
    return tabulate(rows, headers=["family", "implementation", "shape", "dtype", "mode", "old x baseline",
                                   "new x baseline", "change", "p (grew)", "Holm p", ""])  # fmt: skip


def _record(gated, runs: int, root: Path) -> int:
    from focalbench.bench.environment import environment
    from focalbench.bench.gated import baseline_path, record
    from focalbench.bench.report import write_new

    fingerprint = environment("cpu")["machine_fingerprint"]
    eprint(f"focalbench gate: recording baselines of {len(gated)} famil(ies) for {fingerprint} from {runs} run(s)")
    for family, document in record(gated, runs).items():
        path = baseline_path(root, family, fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # a baseline is replaced whole, by intent (--record)
        write_new(path, json.dumps(document, indent=1) + "\n")
        print(f"baseline: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.ab import ABError, install_commit
    from focalbench.bench.environment import environment
    from focalbench.bench.gate import AllUnreliable, GateError, comparable
    from focalbench.bench.gated import baseline_path, compare_all, measure, measure_ab, plan
    from focalbench.bench.report import ReportError, read_report
    from focalbench.cli.options import family_of

    check_slowdown(args)
    for option, value in (("--rounds", args.rounds), ("--attempts", args.attempts), ("--record", args.record)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be >= 1. Got: {value}")
    if args.record and args.impl:
        raise UsageError("--record writes the products' baselines: it takes no --impl (time yours with focalbench run "
                         "and compare)")  # fmt: skip
    families = [family_of(name) for name in args.families or []]
    if args.impl and len(families) > 1:
        raise UsageError(f"--impl gates one implementation in one --family. Got: {', '.join(families)}")
    root = Path(args.root)
    try:
        gated, skipped = plan(args.impl, families or None)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error
    for reason in skipped:
        eprint(f"gate: not gated here: {reason}")
    if not gated:
        raise UsageError("no family has an implementation to gate on this machine")
    if args.record:
        return _record(gated, args.record, root)

    fingerprint = environment("cpu")["machine_fingerprint"]
    baselines = {g.family: baseline_path(root, g.family, fingerprint) for g in gated}
    missing = [family for family, path in baselines.items() if not path.is_file()]
    # the committed baselines time the products: a user's implementation is judged against a base commit
    mode = args.mode if args.mode != "auto" else ("ab" if missing or args.impl else "baseline")
    if mode == "baseline" and missing:
        raise UsageError(f"no baseline for machine {fingerprint} of {', '.join(missing)} (record one with "
                         f"`focalbench gate --record 5`, or use --mode ab)")  # fmt: skip
    impls = {g.family: g.impl for g in gated}
    described = ", ".join(f"{g.family}: {g.impl} ({g.rows()} rows)" for g in gated)

    if mode == "baseline":
        try:
            stored = {family: read_report(path) for family, path in baselines.items()}
        except ReportError as error:
            raise UsageError(str(error)) from error
        eprint(f"gate: {described} against results/baselines/<family>/{fingerprint}.json (this machine kind)")

        def measured() -> dict:
            try:
                new = measure(gated)
            except (ABError, ReportError) as error:
                raise UsageError(str(error)) from error
            for family, report in new.items():
                reason = comparable(stored[family], report)
                if reason is not None:
                    raise UsageError(f"{family}: refusing to gate across machines: {reason}")
            return {family: (stored[family], new[family]) for family in new}
    else:
        import tempfile

        base = args.base or _default_base(root)
        work = Path(tempfile.mkdtemp(prefix="focalbench-gate-ab-"))
        try:
            base_site = install_commit(base, work)
            new_site = install_commit(args.new, work) if args.new else None
        except ABError as error:
            raise UsageError(str(error)) from error
        why = "--mode ab" if args.mode == "ab" else f"no baseline for machine {fingerprint} of {', '.join(missing)}"
        eprint(f"gate: {described}; {why}: A/B against {base} on this machine")

        def measured() -> dict:
            try:
                return measure_ab(gated, base_site, new_site, work, args.rounds)
            except ABError as error:
                raise UsageError(str(error)) from error

    def judged():
        """One measurement judged; None where every row was unreliable. A refusal is a usage error (exit 2)."""
        try:
            return compare_all(measured(), args.max_slowdown, args.max_mean_slowdown, impls)
        except AllUnreliable as error:
            eprint(f"gate: {error}")
            return None
        except GateError as error:
            raise UsageError(str(error)) from error

    # Up to --attempts measurements while rows stay unreliable; a flagged regression is measured once more (one beyond
    # the attempts if need be) and fails the gate when that measurement flags it again. A flag that a judged
    # measurement does not repeat is dropped; one that no later measurement could judge (every row unreliable) fails,
    # as it was never disproved; one raised by the last measurement allowed is listed NOT CONFIRMED.
    verdict = None
    flagged: list = []  # the regressions of the last judged measurement, not yet measured again
    flag_baselines: dict[str, str] = {}
    measurements = 0
    while measurements < args.attempts or (flagged and measurements < args.attempts + 1):
        measurements += 1
        verdict = judged()
        if verdict is None:
            continue
        print(_table(verdict))
        confirmed = [c for c in verdict.regressions if c.key in {f.key for f in flagged}]
        if confirmed:
            for change in confirmed:
                print("REGRESSION " + _line(change, verdict.baselines, regressed=True))
            print(f"\ngate: FAILED: {len(confirmed)} row(s) regressed, measured twice: "
                  + "; ".join(" / ".join(str(k) for k in c.key if k) for c in confirmed))  # fmt: skip
            return 1
        if flagged:
            eprint("gate: the flagged regression did not show again")
        flagged, flag_baselines = list(verdict.regressions), verdict.baselines
        if flagged:
            eprint("gate: regression flagged, measuring again to confirm")
            continue
        if not verdict.unreliable:
            break
        if measurements < args.attempts:
            eprint(f"gate: unreliable row(s) (attempt {measurements} of {args.attempts}): measuring again")
    if verdict is None and flagged:
        for change in flagged:
            print("REGRESSION " + _line(change, flag_baselines, regressed=True))
        print(f"\ngate: FAILED: {len(flagged)} row(s) flagged and never disproved: the measurements after the flag "
              "could not judge any row")  # fmt: skip
        return 1
    if verdict is None:
        print(f"gate: NOT JUDGED: every row was unreliable {measurements} times (a machine too busy to time); "
              "no verdict")  # fmt: skip
        return 0
    for change in flagged:  # raised by the last measurement allowed: a regression must show twice
        print("NOT CONFIRMED " + _line(change, verdict.baselines, regressed=True) + ": flagged once, not again")
    for change in verdict.unreliable:
        print("NOT JUDGED " + _line(change, verdict.baselines) + f": {change.unreliable}")
    if verdict.unmatched:
        print(f"gate: {verdict.unmatched} row(s) in only one of the compared reports, not judged (a gated row the "
              "baseline lacks: record the baselines again, focalbench gate --record 5)")  # fmt: skip
    judged_rows = len(verdict.changes) - len(verdict.unreliable)
    print(f"\ngate: passed: no regression beyond {100 * args.max_slowdown:.0f}% (means "
          f"{100 * args.max_mean_slowdown:.0f}%) in {judged_rows} row(s) of {len(gated)} famil(ies)"
          + (f"; {len(verdict.unreliable)} row(s) unreliable {args.attempts} times, not judged" if verdict.unreliable
             else ""))  # fmt: skip
    return 0
