"""focalbench publish: the site from the committed results, self-contained, with the history's steps; loaded in a
real browser (pytest -m browser), which must catch a broken page."""

from __future__ import annotations

import importlib
import os
import re
import shutil
from pathlib import Path

import pytest

from focalbench.bench.history import find_steps, load, series

ROOT = Path(__file__).resolve().parent.parent
HISTORY = ROOT / "results" / "history"
#: The sigmoid kernel's tenfold slowdown (a weight-0 test that stopped the loop vectorizing) and its fix.
SLOWDOWN, FIX = "dd4ac9ea07", "d1fd2a52ea"


#: Set by .ci/run where it installed the browser: a missing package or browser then fails the tests, never skips them.
REQUIRED = os.environ.get("FOCALBENCH_REQUIRE_BROWSER") == "1"


def _need(module: str) -> None:
    if REQUIRED:
        importlib.import_module(module)
    else:
        pytest.importorskip(module)


def _kinds() -> list[Path]:
    return sorted(p for p in HISTORY.iterdir() if p.is_dir()) if HISTORY.is_dir() else []


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    _need("plotly")
    _need("markdown")
    from focalbench.bench.site import publish

    output = tmp_path_factory.mktemp("site")
    publish(ROOT, output)
    return output


def test_the_committed_history_names_the_sigmoid_slowdown_and_its_fix():
    """On the machine kind(s) the history was recorded on, every sigmoid float32 row steps up at the slowdown's
    commit and down at the fix's, and no softmax row moves there."""
    kinds = _kinds()
    assert kinds, "results/history holds no machine kind"
    for kind in kinds:
        records = load(kind)
        for row in sorted({key for r in records for key in r["rows"]}):
            steps = {s.after.commit["commit"][:10]: s.change for s in find_steps(series(records, row), row)}
            if row.startswith("sigmoid/") and row.endswith("/float32"):
                assert steps.get(SLOWDOWN, 0) > 3 and steps.get(FIX, 0) < -0.7, (kind.name, row, steps)
            if row.startswith("softmax/"):
                assert SLOWDOWN not in steps and FIX not in steps, (kind.name, row, steps)


def test_the_site_is_self_contained_and_shows_the_steps(site):
    pages = sorted(site.glob("*.html"))
    names = {p.name for p in pages}
    assert {"index.html", "family-softmax.html", "family-sigmoid.html", "experiments.html"} <= names
    assert (site / "plotly.min.js").stat().st_size > 1_000_000  # the whole library, bundled
    for page in pages:
        text = page.read_text()
        # nothing fetched from the network: every script, style and image is a file of the site
        sources = re.findall(r"""(?:src|href)=["']([^"'#]+)""", text)
        remote = [s for s in sources if re.match(r"(https?:)?//", s) and not s.startswith("https://doi.org")]
        assert not [s for s in remote if s.endswith((".js", ".css", ".png", ".svg"))], (page.name, remote)
        for local in (s for s in sources if not re.match(r"[a-z]+:", s)):
            assert (site / local).exists(), (page.name, local)
    for kind in _kinds():
        page = next(site.glob(f"history-{kind.name}-sigmoid-sigmoid_focal_loss-retinanet_rows-float32.html"))
        text = page.read_text()
        assert f"<code>{SLOWDOWN}</code>" in text and f"<code>{FIX}</code>" in text
        assert 'class="step-slower"' in text and 'class="step-faster"' in text
    index = (site / "index.html").read_text()
    assert "Which loss to use" in index and "<strong><code>fused</code></strong>" in index
    conformance = (site / "family-softmax.html").read_text()
    assert '<td class="xfail">xfail</td>' in conformance  # the peers' declared defects, shown as such


@pytest.mark.browser
def test_the_site_loads_in_a_real_browser(site):
    _need("playwright")
    from focalbench.bench.site_check import BrowserMissing, check_site

    screenshots = {"index.html": site / "shots" / "index.png"}
    try:
        results = check_site(site, screenshots)
    except BrowserMissing as error:
        if REQUIRED:
            raise
        pytest.skip(str(error))
    assert [(r.name, r.errors) for r in results if r.errors] == []
    by_name = {r.name: r for r in results}
    assert by_name["family-softmax.html"].plots == 1 and by_name["family-sigmoid.html"].plots == 1  # accuracy
    history = [r for name, r in by_name.items() if name.startswith("history-")]
    assert history and all(r.plots == 1 for r in history)
    for kind in _kinds():
        shown = by_name[f"history-{kind.name}-sigmoid-sigmoid_focal_loss-retinanet_rows-float32.html"].text
        assert re.search(rf"slower \+\d+%\s+{SLOWDOWN}", shown) and re.search(rf"faster -\d+%\s+{FIX}", shown), shown
    assert screenshots["index.html"].stat().st_size > 10_000


@pytest.mark.browser
def test_the_browser_check_catches_a_broken_site(site, tmp_path):
    """Which bug would pass the check above? A missing script, a script error, an image that is not there: each
    must be reported on its page."""
    _need("playwright")
    from focalbench.bench.site_check import BrowserMissing, check_site

    broken = tmp_path / "broken"
    shutil.copytree(site, broken)
    (broken / "plotly.min.js").unlink()
    index = broken / "index.html"
    index.write_text(index.read_text().replace("</body>", '<img src="figures/none.png"><script>undefinedCall()'
                                               '</script>\n<script>console.error("boom")</script></body>'))  # fmt: skip
    try:
        results = {r.name: r for r in check_site(broken)}
    except BrowserMissing as error:
        if REQUIRED:
            raise
        pytest.skip(str(error))
    family = " ".join(results["family-softmax.html"].errors)
    assert "failed to load" in family and "plotly.min.js" in family and "did not draw" in family, family
    errors = " ".join(results["index.html"].errors)
    assert "boom" in errors and "undefinedCall" in errors and "none.png" in errors, errors


def test_publish_refuses_an_output_file_and_a_missing_history(tmp_path, capsys, monkeypatch):
    from focalbench.cli import main

    monkeypatch.chdir(ROOT)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert main(["publish", "--output", str(a_file)]) == 2
    assert f"--output must be a directory. Got: {a_file} (a file)" in capsys.readouterr().err
    assert main(["publish", "--output", str(tmp_path / "site"), "--history", str(tmp_path / "none")]) == 2
    assert "--history must be a history folder" in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
