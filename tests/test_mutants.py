"""The mutation score: each family's catalogue is sound (every mutant a proven bug, the baseline correct) and the
checks kill every mutant (``pytest -m mutants``, ~1 min a family; ``focalbench mutants`` prints the table)."""

from __future__ import annotations

import inspect
import re

import pytest

from focalbench.arena.family import families
from focalbench.arena.mutation import KINDS, baseline_failures, guarded_tensors, kill, witness_failure
from focalbench.cli import main

CATALOGUES = {name: family.mutants() for name, family in families().items() if family.mutants is not None}
MUTANTS = [(family, mutant) for family, catalogue in CATALOGUES.items() for mutant in catalogue.mutants]
IDS = [f"{family}-{mutant.name}" for family, mutant in MUTANTS]


def test_every_built_in_family_has_a_catalogue_of_at_least_60_mutants() -> None:
    assert set(CATALOGUES) >= {"softmax", "sigmoid"}
    for family, catalogue in CATALOGUES.items():
        names = [m.name for m in catalogue.mutants]
        assert len(names) >= 60, family
        assert len(set(names)) == len(names), family
        assert {m.kind for m in catalogue.mutants} <= set(KINDS), family
        assert all(m.bug and m.witness.text for m in catalogue.mutants), family


@pytest.mark.parametrize("family", list(CATALOGUES))
def test_the_catalogue_names_exactly_the_faults_its_baseline_can_switch_on(family: str) -> None:
    source = inspect.getsource(inspect.getmodule(CATALOGUES[family].baseline))
    if "guarded_tensors(" in source:  # the shared type guards switch their own faults on
        source += inspect.getsource(guarded_tensors)
    switched = set(re.findall(r'bug\("([a-z0-9-]+)"\)', source)) - {"name"}
    assert switched == {m.name for m in CATALOGUES[family].mutants}


@pytest.mark.parametrize(("family", "mutant"), MUTANTS, ids=IDS)
def test_each_mutant_is_a_bug_its_witness_shows_and_the_baseline_is_right_there(family: str, mutant) -> None:
    catalogue = CATALOGUES[family]
    assert witness_failure(family, catalogue.function(None), mutant.witness) is None
    assert witness_failure(family, catalogue.function(mutant.name), mutant.witness)


@pytest.mark.parametrize("family", list(CATALOGUES))
def test_the_baseline_passes_every_check_with_nothing_declared(family: str) -> None:
    assert baseline_failures(CATALOGUES[family]) == []


def test_an_unknown_mutant_is_named_with_the_catalogue() -> None:
    with pytest.raises(ValueError, match="mutant must be one of .*alpha-twice.*Got: 'alpha-thrice'"):
        CATALOGUES["softmax"].function("alpha-thrice")


def test_the_command_prints_the_score_and_exits_0_when_every_mutant_is_killed(capsys) -> None:
    assert main(["mutants", "--family", "softmax", "--mutant", "alpha-twice", "--mutant", "sum-is-mean"]) == 0
    out = capsys.readouterr().out
    assert "softmax: 2 / 2 mutants killed (100.0 %)" in out
    assert "baseline passes every check: yes" in out


@pytest.mark.mutants
@pytest.mark.parametrize(("family", "mutant"), MUTANTS, ids=IDS)
def test_the_checks_kill_the_mutant(family: str, mutant) -> None:
    result = kill(CATALOGUES[family], mutant.name)
    assert result.killed, f"{mutant.name} ({mutant.bug}) survived every check; its witness: {mutant.witness.text}"
