"""The committed gate baselines: one per family and machine kind, each a merged quick run of its family's gated rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from focalbench.arena.family import families
from focalbench.bench.gated import HALF, plan

ROOT = Path(__file__).resolve().parent.parent
BASELINES = sorted((ROOT / "results" / "baselines").glob("*/*.json"))


def test_baselines_live_in_a_folder_per_family():
    assert BASELINES, "no committed gate baseline"
    stray = [p.name for p in (ROOT / "results" / "baselines").glob("*.json")]
    assert not stray, f"a baseline must be results/baselines/<family>/<machine fingerprint>.json. Got: {stray}"
    assert {p.parent.name for p in BASELINES} <= set(families())


@pytest.mark.parametrize("path", BASELINES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_baseline_is_a_merged_run_of_its_family_on_its_machine_kind(path):
    report = json.loads(path.read_text())
    assert report["settings"].get("family", "softmax") == path.parent.name
    assert report["environment"]["machine_fingerprint"] == path.stem
    assert report["environment"]["threads"] == 1  # the gate's one thread
    timed = [r for r in report["results"] if r["implementation"] != r["baseline"]]
    assert timed and all(r["ratio_to_baseline"] > 0 for r in timed)


def test_every_family_has_a_baseline_of_all_its_gated_rows_on_some_machine_kind():
    """Where the baselines of a machine kind hold every gated row, the gate runs in baseline mode there."""
    gated, _ = plan()
    for rows in gated:
        wanted = {(s, "float32") for s in rows.shapes} | ({(rows.half_shape, HALF)} if rows.half_shape else set())
        complete = []
        for path in (ROOT / "results" / "baselines" / rows.family).glob("*.json"):
            report = json.loads(path.read_text())
            have = {(r["shape_name"], r["dtype"]) for r in report["results"] if r["implementation"] == rows.impl}
            if wanted <= have and all(r.get("samples_s") for r in report["results"]):
                complete.append(path.stem)
        assert complete, f"{rows.family}: no baseline holds every gated row {sorted(wanted)}"
