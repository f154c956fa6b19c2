"""``focalbench mutants``: the mutation score of the checks, per family (:mod:`focalbench.arena.mutation`).

For each family with a catalogue: the baseline must pass every check (else the score means nothing), every mutant's
witness must show it wrong (else it is no bug), and each mutant is run through the family's checks until one fails.
Exit 1 when the baseline fails a check, a witness shows nothing, or a mutant survives."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from focalbench.cli.console import UsageError, eprint
from focalbench.cli.options import DEVICES, add_family, family_of, writable_directory

__all__ = ["add_arguments", "run", "score"]

HELP = "mutation score of the checks: a catalogue of realistic bugs per family, each run until a check catches it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--mutant", action="append", dest="mutants", metavar="NAME", help="only these mutants")
    parser.add_argument("--output", metavar="DIR", help="also write the kills there, as mutants-<family>-<time>.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="print what each kill's case found")
    add_family(parser, "only this family's catalogue (default: every family that has one)")


def score(family: str, device: str = "cpu", names: list[str] | None = None, progress=None) -> dict:
    """The family's baseline failures, unproven witnesses and kills, as a JSON-ready record."""
    from focalbench.arena.family import get_family
    from focalbench.arena.mutation import baseline_failures, kill, witness_failure

    catalogue = get_family(family).mutants()
    try:
        mutants = [catalogue.mutant(name) for name in names] if names else list(catalogue.mutants)
    except ValueError as error:
        raise UsageError(f"--{error}") from error
    started = time.perf_counter()
    baseline = baseline_failures(catalogue, device)
    unproven = [m.name for m in mutants if not witness_failure(family, catalogue.function(m.name), m.witness, device)]
    kills = []
    for mutant in mutants:
        result = kill(catalogue, mutant.name, device)
        kills.append({"mutant": mutant.name, "kind": mutant.kind, "bug": mutant.bug, "seen_in": mutant.seen_in,
                      "witness": mutant.witness.text, "check": result.check, "case": result.case,
                      "detail": result.detail})  # fmt: skip
        if progress is not None:
            progress(mutant.name, result.check or "SURVIVED")
    return {
        "kind": "mutants",
        "family": family,
        "device": device,
        "baseline_failures": [list(f) for f in baseline],
        "unproven": unproven,
        "kills": kills,
        "killed": sum(bool(k["check"]) for k in kills),
        "total": len(kills),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _report(record: dict, verbose: bool) -> None:
    from collections import Counter

    from tabulate import tabulate

    family, kills = record["family"], record["kills"]
    rows = [[k["mutant"], k["kind"], k["check"] or "SURVIVED", k["case"]] + ([k["detail"][:100]] if verbose else [])
            for k in kills]  # fmt: skip
    print(f"\n{family} family:")
    print(tabulate(rows, headers=["mutant", "kind", "killed by", "case"] + (["what it found"] if verbose else [])))
    by_check = Counter(k["check"] for k in kills if k["check"])
    print("\nkills by check: " + ", ".join(f"{check} {n}" for check, n in by_check.most_common()))
    for check, case, detail in record["baseline_failures"]:
        print(f"baseline FAILS {check} / {case}: {detail}")
    for name in record["unproven"]:
        print(f"witness of {name} shows no bug: it is not a mutant the score may count")
    percent = 100 * record["killed"] / max(record["total"], 1)
    print(
        f"{family}: {record['killed']} / {record['total']} mutants killed ({percent:.1f} %) on the {record['device']}"
        f" in {record['seconds']:g} s; baseline passes every check: {'no' if record['baseline_failures'] else 'yes'}"
    )


def run(args: argparse.Namespace) -> int:
    from focalbench.arena.family import families

    chosen = family_of(args.family)
    names = [chosen] if chosen else [name for name, family in families().items() if family.mutants is not None]
    if chosen and families()[chosen].mutants is None:
        raise UsageError(f"--family must name a family with a mutant catalogue. Got: {chosen!r}, which has none")
    directory = writable_directory(args.output, "--output") if args.output else None
    failed = False
    for name in names:
        record = score(name, args.device, args.mutants, progress=lambda m, c: eprint(f"  {m:36s} {c}"))
        _report(record, args.verbose)
        failed |= bool(record["baseline_failures"] or record["unproven"] or record["killed"] < record["total"])
        if directory is not None:
            from focalbench.bench.environment import environment

            record["environment"] = environment(args.device)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            path = Path(directory) / f"mutants-{name}-{stamp}.json"
            path.write_text(json.dumps(record, indent=1, default=str) + "\n")
            eprint(f"wrote {path}")
    return 1 if failed else 0
