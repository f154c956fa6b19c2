"""``focalbench publish``: the benchmark site from the committed results, and its check in a real browser."""

from __future__ import annotations

import argparse
from pathlib import Path

from focalbench.cli.console import UsageError, eprint

__all__ = ["add_arguments", "run"]

HELP = "build the static benchmark site (history, conformance, accuracy, experiments) from results/"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("site"), metavar="DIR", help="the site's folder (site)")
    parser.add_argument("--history", type=Path, metavar="DIR", help="the history's folder (results/history)")
    parser.add_argument("--check", action="store_true",
                        help="then open every page in headless Chromium: fail on a console error, a missing resource "
                             "or a plot that did not draw (needs the browser extra and a chromium binary)")  # fmt: skip
    parser.add_argument(
        "--screenshots",
        type=Path,
        metavar="DIR",
        help="with --check: write site-index.png and site-history.png (the page with most steps) there",
    )


def run(args: argparse.Namespace) -> int:
    from focalbench.bench.site import PublishError, publish

    if args.screenshots and not args.check:
        raise UsageError(f"--screenshots needs --check (the browser takes them). Got: --screenshots {args.screenshots}")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"--output must be a directory. Got: {args.output} (a file)")
    if args.history is not None and not args.history.is_dir():
        raise UsageError(f"--history must be a history folder (focalbench history --output). Got: {args.history}")
    root = Path.cwd()
    if not (root / "results").is_dir():
        raise UsageError(f"focalbench publish runs in a focalbench checkout (a results/ folder). Got: {root}")
    try:
        pages = publish(root, args.output, args.history)
    except PublishError as error:
        raise UsageError(str(error)) from error
    print(f"{len(pages)} page(s) in {args.output}/ (open {args.output / 'index.html'})")
    if not args.check:
        return 0
    from focalbench.bench.site_check import BrowserMissing, check_site

    shots = None
    if args.screenshots:
        import json

        steps = json.loads((args.output / "site.json").read_text())["steps"]  # the history page with most steps
        history = max(steps, key=steps.get) if steps else next((p.name for p in pages if "history-" in p.name), None)
        shots = {"index.html": args.screenshots / "site-index.png"}
        if history:
            shots[history] = args.screenshots / "site-history.png"
    try:
        results = check_site(args.output, shots)
    except BrowserMissing as error:
        raise UsageError(str(error)) from error
    failed = [r for r in results if r.errors]
    for r in failed:
        for error in r.errors:
            eprint(f"  {r.name}: {error}")
    print(f"browser: {len(results) - len(failed)} of {len(results)} page(s) clean, "
          f"{sum(r.plots for r in results)} plot(s) drawn")  # fmt: skip
    return 1 if failed else 0
