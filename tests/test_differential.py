"""Randomized differential test: every implementation against the reference's limits on random inputs.

Each case is drawn from one seed (``FOCALBENCH_SEED``, printed with every failure) and carries its own seed, so the
``Case(...)`` in a failure message rebuilds the very tensors. A failure that a declared known defect explains is
allowed (those are asserted strictly by the conformance checks); any other fails the test. The default run draws a
small fixed budget; ``-m slow`` draws many more from another seed.
"""

from __future__ import annotations

import os

import pytest

from focalbench.arena.families.softmax.cases import differential_cases
from focalbench.arena.checks import differential
from focalbench.arena.registry import get_implementation, list_implementations

SEED = int(os.environ.get("FOCALBENCH_SEED", "20261201"))
BUDGET, SLOW_BUDGET = 80, 2000


def _assert_all_agree(name: str, seed: int, count: int, device: str) -> None:
    impl = get_implementation(name)
    outcomes = [(case, differential(impl, case, device)) for case in differential_cases(seed, count)]
    ran = [o for _, o in outcomes if o.status != "n/a"]
    failures = [f"{case!r}: {o.detail}" for case, o in outcomes if o.status == "fail"]
    assert not failures, (
        f"{name}: {len(failures)} of {len(ran)} random cases differ from the reference "
        f"(FOCALBENCH_SEED={seed}, {count} cases):\n" + "\n".join(failures[:5])
    )
    assert ran, f"{name}: none of the {count} random cases applies (FOCALBENCH_SEED={seed})"


@pytest.mark.parametrize("name", list_implementations(family="softmax"))
def test_random_inputs_agree_with_the_reference(name, device):
    _assert_all_agree(name, SEED, BUDGET, device)


@pytest.mark.slow
@pytest.mark.parametrize("name", list_implementations(family="softmax"))
def test_many_random_inputs_agree_with_the_reference(name, device):
    _assert_all_agree(name, SEED + 1, SLOW_BUDGET, device)
