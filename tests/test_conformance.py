"""Every registered implementation through every check on every case: the conformance matrix as tests.

A new file in ``implementations/`` is picked up here without editing this file. Not applicable -> skipped with the
reason; a declared known defect -> a strict expected failure (a defect that stops reproducing fails the test).
"""

from __future__ import annotations

import pytest

from focalbench.arena.core import all_checks, case_id, evaluate
from focalbench.arena.registry import get_implementation, list_implementations

CHECKS = all_checks()
PARAMS = [
    pytest.param(impl, check, case, id=f"{impl}-{check}-{case_id(case)}")
    for check in CHECKS
    for impl in list_implementations(family=CHECKS[check].family)  # a check is written for one loss family
    for case in CHECKS[check].cases()
]


@pytest.mark.parametrize(("impl_name", "check_name", "case"), PARAMS)
def test_conformance(impl_name: str, check_name: str, case, device: str) -> None:
    outcome = evaluate(get_implementation(impl_name), CHECKS[check_name], case, device)
    if outcome.status == "n/a":
        pytest.skip(outcome.detail)
    if outcome.status == "xfail":
        pytest.xfail(outcome.detail)
    assert outcome.status == "pass", outcome.detail
