"""The published site loaded in a real browser: headless Chromium driven by Playwright.

Every page the site lists (``site.json``) is opened from the file system; the check fails on any console error, an
uncaught script error or a resource that did not load, and on a plot that did not draw (every Plotly div of a page
must hold an SVG with drawn marks and a non-zero size). The browser is the system's (Debian's ``chromium``; another
with ``$FOCALBENCH_BROWSER``): Playwright's own browser download is not needed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["BrowserMissing", "PageResult", "browser_path", "check_site"]


class BrowserMissing(RuntimeError):
    """No Chromium binary, or Playwright is not installed."""


@dataclass
class PageResult:
    """What one page did in the browser."""

    name: str
    errors: list[str] = field(default_factory=list)
    plots: int = 0
    text: str = ""


def browser_path() -> str:
    """The Chromium binary: ``$FOCALBENCH_BROWSER``, else ``chromium`` or ``chromium-browser`` on the PATH.

    Raises:
        BrowserMissing: none is found.
    """
    named = os.environ.get("FOCALBENCH_BROWSER")
    for candidate in ([named] if named else ["chromium", "chromium-browser", "google-chrome"]):
        found = shutil.which(candidate)
        if found:
            return found
    raise BrowserMissing("no Chromium found: install Debian's chromium (apt install chromium) or set "
                         "FOCALBENCH_BROWSER to a Chromium binary")  # fmt: skip


_PLOTS_DRAWN = """
() => Array.from(document.querySelectorAll('.plotly-graph-div')).map(div => {
    const svg = div.querySelector('svg.main-svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    const marks = div.querySelectorAll('g.trace path, g.trace .point, g.scatterlayer path').length;
    return {width: box.width, height: box.height, marks: marks};
})
"""


def check_site(site: Path, screenshots: dict[str, Path] | None = None) -> list[PageResult]:
    """Open every page of the site at ``site`` in headless Chromium; returns what each page did. ``screenshots``:
    page name -> PNG path to write a full-page screenshot of it to.

    Raises:
        BrowserMissing: Playwright or the browser is missing.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        message = f"the site check needs the browser extra: pip install 'focalbench[browser]'. Got: {error}"
        raise BrowserMissing(message) from error
    executable = browser_path()
    pages = json.loads((site / "site.json").read_text())["pages"]
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--allow-file-access-from-files"])  # fmt: skip
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for name in pages:
                result = PageResult(name)
                page = context.new_page()
                page.on("console", lambda m, r=result: r.errors.append(f"console: {m.text}") if m.type == "error"
                        else None)  # fmt: skip
                page.on("pageerror", lambda e, r=result: r.errors.append(f"script error: {e}"))
                page.on("requestfailed", lambda q, r=result: r.errors.append(f"failed to load: {q.url}"))
                response = page.goto((site / name).resolve().as_uri(), wait_until="load")
                if response is not None and not response.ok:
                    result.errors.append(f"failed to load the page: {response.status}")
                page.wait_for_timeout(300)  # plotly draws after load
                for i, plot in enumerate(page.evaluate(_PLOTS_DRAWN)):
                    if plot["width"] <= 0 or plot["height"] <= 0 or plot["marks"] == 0:
                        result.errors.append(f"plot {i} did not draw: {plot}")
                    else:
                        result.plots += 1
                for image in page.evaluate("() => Array.from(document.images).map(i => [i.src, i.naturalWidth])"):
                    if image[1] == 0:
                        result.errors.append(f"image did not load: {image[0]}")
                result.text = page.inner_text("body")
                if screenshots and name in screenshots:
                    screenshots[name].parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(screenshots[name]), full_page=False)
                page.close()
                results.append(result)
        finally:
            browser.close()
    return results
