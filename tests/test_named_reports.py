"""The tables of README.md and docs/ read the reports docs/reports.json names, each of the current product source: a
new report in results/ changes no table until `focalbench docs --use` names it, and `focalbench docs --check` refuses
a named report of other product source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from focalbench.arena.family import families
from focalbench.bench import tables
from focalbench.bench.named_reports import INDEX, read_index
from focalbench.bench.product_source import product_source_fingerprint
from focalbench.cli import main

ROOT = Path(__file__).resolve().parents[1]
#: The generated blocks read from reports: the two which-loss tables, every family's conformance matrix and mutation
#: score.
FROM_REPORTS = ("which-loss", "which-loss-all", *(f"conformance-{name}" for name in families()),
                *(f"mutants-{name}" for name in families()))  # fmt: skip


def _write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository root holding the blocks read from reports, the index, and copies of the reports it names
    re-stamped as measured on the current product source (the committed ones may predate it)."""
    (tmp_path / "results").mkdir()
    (tmp_path / "docs").mkdir()
    shutil.copyfile(ROOT / INDEX, tmp_path / INDEX)
    for kinds in read_index(ROOT).values():
        for name in kinds.values():
            document = json.loads((ROOT / "results" / name).read_text())
            document["environment"]["product_source"] = product_source_fingerprint()
            _write(tmp_path / "results" / name, document)
    (tmp_path / "README.md").write_text("".join(f"<!-- BEGIN generated: {name} -->\n<!-- END generated: {name} -->\n"
                                                for name in FROM_REPORTS))  # fmt: skip
    assert tables.refresh(tmp_path) == list(FROM_REPORTS)
    return tmp_path


def _named(repo: Path, family: str, kind: str) -> tuple[Path, dict]:
    path = repo / "results" / read_index(repo)[family][kind]
    return path, json.loads(path.read_text())


def _newer(repo: Path, family: str, kind: str, prefix: str, edit) -> Path:
    """A new report in ``repo``'s results/, newer than the named one of its family and kind, edited by ``edit``."""
    _, document = _named(repo, family, kind)
    document["created"] = "2099-12-31T00:00:00+00:00"
    edit(document)
    return _write(repo / "results" / f"{prefix}-cpu-20991231T000000Z-{family}.json", document)


def _fail_every_check(document: dict) -> None:
    document["checks"] = {impl: dict.fromkeys(verdicts, "fail") for impl, verdicts in document["checks"].items()}
    for row in document["results"]:
        row["ratio_to_baseline"] *= 3


def _worse_accuracy(document: dict) -> None:
    for row in document["rows"]:
        row["max_loss_error"] = row["max_grad_error"] = 1.0


def test_a_new_report_in_results_changes_no_table_until_the_index_names_it(repo, capsys):
    before = tables.blocks(repo)
    speed = _newer(repo, "softmax", "speed", "focalbench", _fail_every_check)
    accuracy = _newer(repo, "softmax", "accuracy", "accuracy", _worse_accuracy)
    quick = _newer(repo, "sigmoid", "speed", "focalbench", lambda d: d["settings"].update(quick=True))
    assert tables.stale(repo) == [] and tables.blocks(repo) == before

    assert main(["docs", "--root", str(repo), "--use", str(speed), str(accuracy)]) == 0
    assert read_index(repo)["softmax"] == {**read_index(ROOT)["softmax"], "speed": speed.name,
                                           "accuracy": accuracy.name}  # fmt: skip
    assert read_index(repo)["sigmoid"]["speed"] != quick.name
    err = capsys.readouterr().err
    assert f"softmax speed report: results/{speed.name} (was results/" in err
    changed = {name for name, (_, body) in tables.blocks(repo).items() if body != before[name][1]}
    assert changed == {"which-loss", "which-loss-all", "conformance-softmax"}
    conformance = tables.blocks(repo)["conformance-softmax"][1]
    assert f"From `results/{speed.name}`" in conformance and "| pass" not in conformance
    assert f"`results/{accuracy.name}`" in tables.blocks(repo)["which-loss-all"][1]
    assert main(["docs", "--check", "--root", str(repo)]) == 0


def test_docs_check_refuses_a_named_report_of_other_product_source_or_none(repo, capsys):
    assert main(["docs", "--check", "--root", str(repo)]) == 0
    capsys.readouterr()
    speed, document = _named(repo, "softmax", "speed")
    document["environment"]["product_source"] = "0123456789ab"
    _write(speed, document)
    accuracy, document = _named(repo, "sigmoid", "accuracy")
    del document["environment"]["product_source"]
    _write(accuracy, document)
    readme = (repo / "README.md").read_text()

    assert main(["docs", "--check", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    current = product_source_fingerprint()
    assert (f"refused: results/{speed.name} (the softmax speed report in docs/reports.json) records product source "
            f"0123456789ab; the current product source is {current}: re-record it (`focalbench run --family "
            "softmax`) and name the new file (`focalbench docs --use FILE`)") in out  # fmt: skip
    assert (f"refused: results/{accuracy.name} (the sigmoid accuracy report in docs/reports.json) records no product "
            f"source; the current product source is {current}") in out  # fmt: skip
    assert "stale generated table(s): which-loss, which-loss-all, conformance-softmax (" in out

    assert main(["docs", "--root", str(repo)]) == 1  # regenerating leaves the refused reports' tables as they were
    assert "2 named report(s) refused" in capsys.readouterr().out
    assert (repo / "README.md").read_text() == readme


def test_docs_check_refuses_a_named_report_that_is_missing_or_of_another_kind(repo, capsys):
    speed, _ = _named(repo, "sigmoid", "speed")
    speed.unlink()
    index = json.loads((repo / INDEX).read_text())
    index["reports"]["softmax"]["accuracy"] = index["reports"]["softmax"]["mutants"]
    (repo / INDEX).write_text(json.dumps(index))
    assert main(["docs", "--check", "--root", str(repo)]) == 1
    out = capsys.readouterr().out
    assert f"refused: results/{speed.name} (the sigmoid speed report in docs/reports.json): " in out
    assert "is named as the softmax accuracy report in docs/reports.json but is the softmax mutants report" in out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda repo: shutil.copyfile(_named(repo, "softmax", "speed")[0], repo / "elsewhere.json"),
            "--use must name a report file under",
        ),
        (
            lambda repo: _newer(
                repo, "softmax", "speed", "focalbench", lambda d: d["environment"].update(product_source="0123456789ab")
            ),
            "records product source 0123456789ab; the current product source is {current}",
        ),
        (
            lambda repo: _newer(repo, "softmax", "speed", "focalbench", lambda d: d.update(checks={})),
            "holds no correctness checks (it was run with --skip-checks)",
        ),
        (
            lambda repo: _newer(repo, "sigmoid", "accuracy", "accuracy", lambda d: d.update(dtype="float64")),
            "must be a float32 sweep. Got: 'float64'",
        ),
        (
            lambda repo: _newer(repo, "sigmoid", "accuracy", "accuracy", lambda d: d.update(rows=d["rows"][:1])),
            "does not cover the family's sweep axis: no rows at",
        ),
        (
            lambda repo: _newer(repo, "softmax", "speed", "detection", lambda d: d.update(kind="detection")),
            "must be a report of one of the kinds the tables read (speed, accuracy, mutants). Got: kind 'detection'",
        ),
    ],
    ids=["outside-results", "other-product-source", "no-checks", "float64", "part-of-the-axis", "other-kind"],
)
def test_docs_use_refuses_a_report_the_tables_cannot_read_and_changes_nothing(repo, capsys, make, message):
    index, readme = (repo / INDEX).read_text(), (repo / "README.md").read_text()
    assert main(["docs", "--root", str(repo), "--use", str(make(repo))]) == 2
    assert message.format(current=product_source_fingerprint()) in capsys.readouterr().err
    assert (repo / INDEX).read_text() == index and (repo / "README.md").read_text() == readme


def test_docs_use_takes_one_report_a_table_and_no_check(repo, capsys):
    first = _newer(repo, "softmax", "speed", "focalbench", lambda d: None)
    second = _write(first.with_name("focalbench-cpu-20991231T000001Z-softmax.json"), json.loads(first.read_text()))
    assert main(["docs", "--root", str(repo), "--use", str(first), "--use", str(second)]) == 2
    assert f"--use names two softmax speed reports: {first.name} and {second.name}" in capsys.readouterr().err
    assert main(["docs", "--root", str(repo), "--check", "--use", str(first)]) == 2
    assert "--check changes nothing, so it takes no --use" in capsys.readouterr().err
