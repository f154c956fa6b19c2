"""The package's shape: the layers' import rules, no import cycle, a lazy product, the old import paths, a README
that is one page, and generated tables that are current."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "focalbench"
PRODUCT = ("focalbench.losses", "focalbench.kernels")
HARNESS = ("focalbench.arena", "focalbench.bench", "focalbench.cli", "focalbench.experiments")


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, ``implementations/`` as ``focalbench.implementations``."""
    found = {}
    for base, prefix in ((PACKAGE, "focalbench"), (ROOT / "implementations", "focalbench.implementations")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules ``name`` imports anywhere in its source: top level and inside functions alike."""
    targets = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                # `from package import module` imports the module; `from module import name` the module
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {t for t in targets if t in MODULES and t != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    """One import cycle among the package's modules, as a path, or None (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_reader_sees_imports_inside_functions():
    """The cycle test below is only as good as its reader: a function-level import must be an edge."""
    assert "focalbench.losses.softmax.op" in GRAPH["focalbench.losses.softmax.api"]  # imported in _traced
    assert "focalbench.arena.registry" in GRAPH["focalbench.cli.list"]  # imported in run()
    assert "focalbench.kernels.cpu_facts" in GRAPH["focalbench.kernels.build"]  # `from X import name`: module X


def test_no_module_of_the_package_takes_part_in_an_import_cycle():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_cycle_search_finds_a_cycle_when_there_is_one(monkeypatch):
    monkeypatch.setitem(GRAPH, "focalbench.kernels.cpu_facts", GRAPH["focalbench.kernels.cpu_facts"] | {
        "focalbench.kernels.build"})  # fmt: skip
    assert _cycle() == ["focalbench.kernels.build", "focalbench.kernels.cpu_facts", "focalbench.kernels.build"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(PRODUCT)))
def test_the_product_imports_nothing_of_the_arena_benchmarks_or_command_line(name):
    assert not {t for t in GRAPH[name] if t.startswith(HARNESS)}, name


def test_nothing_imports_the_command_line_but_the_command_line():
    outside = {n: {t for t in GRAPH[n] if t.startswith("focalbench.cli")} for n in GRAPH if not n.startswith(
        "focalbench.cli")}  # fmt: skip
    assert not any(outside.values()), {n: t for n, t in outside.items() if t}


def test_no_private_name_crosses_a_module():
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("focalbench"):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                crossing += [f"{name}: {node.module}.{n}" for n in private]
    assert not crossing, crossing


def test_a_loss_call_imports_no_arena_benchmark_or_command_line_module():
    code = (
        "import sys, torch, focalbench\n"
        "x = torch.randn(6, 4, requires_grad=True)\n"
        "focalbench.focal_loss(x, torch.tensor([0, 1, 2, 3, 0, 1])).backward()\n"
        "focalbench.FocalLoss(gamma=1.0)(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))\n"
        "y = torch.randn(3, 5, requires_grad=True)\n"
        "focalbench.sigmoid_focal_loss(y, torch.ones(3, 5), reduction='sum').backward()\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('focalbench'))))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "focalbench.kernels.cpu" in loaded  # the probe reaches the kernels, so it would see a stray import
    assert not [m for m in loaded if m.startswith(HARNESS)], loaded


@pytest.mark.parametrize(("old", "name"), [("focalbench.registry", "register"), ("focalbench.semantics", "validate")])
def test_the_old_import_paths_work_with_a_deprecation_warning(old, name):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.") + " is deprecated"):
        module = __import__(old, fromlist=[name])
    assert callable(getattr(module, name))


def test_the_public_names_of_the_package_stay():
    import focalbench

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in focalbench.__all__:
            assert getattr(focalbench, name) is not None, name


def test_python_dash_m_focalbench_cli_runs():
    result = subprocess.run([sys.executable, "-m", "focalbench.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "fingerprint" in result.stdout


def test_the_readme_is_one_page_and_links_into_docs():
    readme = (ROOT / "README.md").read_bytes()
    assert len(readme) <= 12_000, f"README.md is {len(readme)} bytes"
    for page in ("semantics", "implementations", "checks", "results", "gate", "experiments", "cli", "families",
                 "layout"):  # fmt: skip
        assert f"docs/{page}.md" in readme.decode(), page
        assert (ROOT / "docs" / f"{page}.md").exists(), page


def test_the_generated_tables_are_current():
    from focalbench.arena.registry import unavailable_implementations
    from focalbench.bench import tables

    unavailable = unavailable_implementations()
    if unavailable:  # the implementations table lists what is registered: it is written where every one is
        pytest.skip(f"implementations unavailable here, so the generated list differs: {sorted(unavailable)}")
    names = set(tables.blocks(ROOT))
    assert {"which-loss", "implementations", "checks-softmax", "checks-sigmoid", "conformance-softmax",
            "conformance-sigmoid", "speed-softmax", "speed-sigmoid"} <= names  # fmt: skip
    from focalbench.bench.named_reports import refusals
    from focalbench.cli.docs import GENERATORS

    assert "commands" in names
    refused = refusals(ROOT)  # every figure in README/docs is read from a report of the current product source
    assert not refused, "re-record these reports and name them (docs/results.md#the-reports-the-tables-read):\n" + (
        "\n".join(refused))  # fmt: skip
    assert tables.stale(ROOT, GENERATORS) == [], "run `focalbench docs` and commit README.md and docs/"


@pytest.mark.parametrize("family", ["softmax", "sigmoid"])
def test_the_speed_table_restates_the_products_rows_of_the_named_report(family):
    """Each forward+backward float32 row of the family's product in its named speed report, and no other, is a line of
    the generated speed table, with its ratio to the baseline, its time per logit and its multiple of the exp floor."""
    from focalbench.arena.family import get_family
    from focalbench.bench import tables
    from focalbench.bench.named_reports import named

    path, data = named(ROOT, family, "speed")
    product = get_family(family).recommended
    rows = [r for r in data["results"] if r["implementation"] == product and r["mode"] == "forward+backward"
            and r["dtype"] == "float32"]  # fmt: skip
    lines = [line for line in tables.generators()[f"speed-{family}"](ROOT).splitlines() if line.startswith("| `")]
    assert rows and len(lines) == len(rows), (len(rows), lines)
    for row, line in zip(rows, lines, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == f"`{row['shape_name']}`" and cells[2] == f"{row['ratio_to_baseline']:.2f}", (cells, row)
        assert cells[4] == f"{row['ns_per_logit']:.2f}" and cells[7] == f"{row['ratio_to_floor']:.2f}", (cells, row)
    assert path.name in tables.generators()[f"speed-{family}"](ROOT)


def test_a_stale_table_is_reported_and_refreshed(tmp_path):
    from focalbench.arena.family import families
    from focalbench.bench import tables

    (tmp_path / "README.md").write_text("x\n<!-- BEGIN generated: checks-sigmoid -->\nold\n<!-- END generated: "
                                        "checks-sigmoid -->\ny\n")  # fmt: skip
    # the other families' tables of that kind are missing (a family's tables are never silently absent); the kinds
    # of table this README holds none of are not asked for
    others = [f"checks-{name}" for name in families() if name != "sigmoid"]
    assert tables.missing(tmp_path) == others
    assert tables.stale(tmp_path) == ["checks-sigmoid", *others]
    # the stale block rewritten, and the other families' tables of the same kind added after it
    assert tables.refresh(tmp_path) == ["checks-sigmoid", *others]
    text = (tmp_path / "README.md").read_text()
    assert "`sigmoid_matches_reference`" in text and text.startswith("x\n") and text.endswith("-->\ny\n")
    assert text.index("END generated: checks-sigmoid") < text.index("BEGIN generated: checks-softmax")
    assert tables.stale(tmp_path) == tables.missing(tmp_path) == []
    (tmp_path / "README.md").write_text("<!-- BEGIN generated: nonsense -->\n<!-- END generated: nonsense -->\n")
    assert tables.stale(tmp_path)[0] == "nonsense"


def test_every_package_of_the_source_tree_is_installed():
    """pyproject.toml lists its packages: a package folder it does not list (a new family's losses/ or arena folder)
    would be missing from a wheel while an editable install still imports it. Every folder with an __init__.py under
    focalbench/, and implementations/ (installed as focalbench.implementations), is listed, and nothing else."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "focalbench").rglob("__init__.py")
             if "__pycache__" not in p.parts}  # fmt: skip
    assert listed == found | {"focalbench.implementations"}, (sorted(found - listed), sorted(listed - found))
