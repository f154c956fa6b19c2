"""Randomized differential test: every implementation against the reference's limits on random inputs.

Each case is drawn from one seed (``FOCALBENCH_SEED``, printed with every failure) and carries its own seed, so the
``Case(...)`` in a failure message rebuilds the very tensors. A failure that a declared known defect explains is
allowed (those are asserted strictly by the conformance checks); any other fails the test. The default run draws a
small fixed budget; ``-m slow`` draws many more from another seed.
"""

from __future__ import annotations

import os

import pytest

from focalbench.arena.differential import differential, differential_cases
from focalbench.arena.family import families
from focalbench.arena.registry import get_implementation, list_implementations

SEED = int(os.environ.get("FOCALBENCH_SEED", "20261201"))
BUDGET, SLOW_BUDGET = 80, 2000


def _assert_all_agree(name: str, seed: int, count: int, device: str) -> None:
    impl = get_implementation(name)
    outcomes = [(case, differential(impl, case, device)) for case in differential_cases(impl.family, seed, count)]
    ran = [o for _, o in outcomes if o.status != "n/a"]
    failures = [f"{case!r}: {o.detail}" for case, o in outcomes if o.status == "fail"]
    assert not failures, (
        f"{name}: {len(failures)} of {len(ran)} random cases differ from the reference "
        f"(FOCALBENCH_SEED={seed}, {count} cases):\n" + "\n".join(failures[:5])
    )
    assert ran, f"{name}: none of the {count} random cases applies (FOCALBENCH_SEED={seed})"


#: every implementation of every family with randomized differential testing
NAMES = [name for family in families().values() if family.differential for name in list_implementations(family.name)]


@pytest.mark.parametrize("name", NAMES)
def test_random_inputs_agree_with_the_reference(name, device):
    _assert_all_agree(name, SEED, BUDGET, device)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_many_random_inputs_agree_with_the_reference(name, device):
    _assert_all_agree(name, SEED + 1, SLOW_BUDGET, device)


def test_the_random_cases_of_each_family_reach_its_argument_space():
    """The draws cover what the families' semantics allow: every dtype and reduction, empty inputs, non-finite
    logits, strided layouts (softmax: ignore masks; sigmoid: soft targets, any shape)."""
    softmax = differential_cases("softmax", SEED, BUDGET)
    sigmoid = differential_cases("sigmoid", SEED, BUDGET)
    for cases in (softmax, sigmoid):
        assert len({c.dtype for c in cases}) == 4 and len({c.reduction for c in cases}) == 3
        assert any(0 in c.shape for c in cases) and any(c.layout == "non_contiguous" for c in cases)
    assert any(c.masked for c in softmax) and any(c.ignore_fraction == 1.0 for c in softmax)
    assert any(c.infinite for c in sigmoid) and {"hard", "soft", "edge"} <= {c.targets for c in sigmoid}
    assert {0, 1, 2, 4} <= {len(c.shape) for c in sigmoid}
    assert repr(softmax[0]) != repr(softmax[1]) and differential_cases("sigmoid", SEED, 3) == sigmoid[:3]
