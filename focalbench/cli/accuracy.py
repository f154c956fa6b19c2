"""``focalbench accuracy``: each implementation's worst relative error against its family's oracle, by the family's
sweep axis, written as JSON and markdown."""

from __future__ import annotations

import argparse
import datetime as _dt

from focalbench.cli.console import eprint
from focalbench.cli.options import DEVICES, add_family, one_family

__all__ = ["add_arguments", "run"]

HELP = "worst relative error vs an arbitrary-precision oracle, by logit gap (sigmoid: by |x|)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--impl", action="append", dest="impls", metavar="NAME|module:attr")
    add_family(parser, "the loss family (default: the named implementations', else softmax)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", choices=DEVICES, default="cpu")
    parser.add_argument("--output", default="results", help="directory for the JSON and markdown tables")


def run(args: argparse.Namespace) -> int:
    import torch
    from tabulate import tabulate

    from focalbench.arena import accuracy
    from focalbench.arena.family import get_family
    from focalbench.bench.environment import environment
    from focalbench.bench.report import write_document

    dtype = getattr(torch, args.dtype)
    impls, family = one_family(args, args.device)
    impls = [i for i in impls if i.supports(dtype=dtype) is None]
    kind = get_family(family)
    axis = kind.sweep.axis
    rows = accuracy.sweep(impls, family, dtype=dtype, device=args.device,
                          progress=lambda value: eprint(f"  {axis} {value:g} done"))  # fmt: skip
    by_impl = {impl.name: {r.gap: r for r in rows if r.implementation == impl.name} for impl in impls}
    values = sorted({r.gap for r in rows})
    headers = ["implementation"] + [f"{g:g}" for g in values]

    def cell(r):
        return f"{max(r.max_loss_error, r.max_grad_error):.1e}"

    table = [[name] + [cell(by_impl[name][g]) for g in values] for name in by_impl]
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
    markdown = (
        f"# focalbench accuracy: {family} family, {args.dtype} on {args.device}\n\nCreated {document['created']} "
        f"from commit `{env.get('git_commit')}` (product source `{env['product_source']}`). Maximum relative error of "
        f"{kind.sweep.description}; exact values below the dtype's smallest normal number are compared absolutely.\n\n"
        + tabulate(table, headers=headers, tablefmt="github")
        + f"\n\nWorst case per implementation and {axis}:\n\n"
        + tabulate([[r.implementation, f"{r.gap:g}", f"{r.max_loss_error:.2e}", f"{r.max_grad_error:.2e}", r.worst]
                    for r in rows], headers=["implementation", axis, "loss", "gradient", "where"],
                   tablefmt="github")
        + "\n"
    )  # fmt: skip
    json_path, md_path = write_document(document, markdown, args.output, "accuracy")
    print(f"\nwritten: {json_path}\n         {md_path}")
    return 0
