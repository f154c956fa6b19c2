"""Randomized differential testing: an implementation against its family's reference limits on random cases
(:class:`focalbench.arena.family.Differential`: the family draws the cases and says how one is judged).

Agreement is judged on the scale of a unit loss: the relative accuracy of confident elements is the accuracy checks'
business; this test is after wrong values, wrong infinities and NaN.
"""

from __future__ import annotations

from focalbench.arena.core import Outcome, SampleCase, classified, failure_of
from focalbench.arena.family import get_family
from focalbench.arena.registry import Implementation

__all__ = ["differential", "differential_cases"]


def differential_cases(family: str, seed: int, count: int) -> list[SampleCase]:
    """``count`` random cases of ``family`` drawn from ``seed`` (each carries its own seed: its repr rebuilds it)."""
    spec = get_family(family).differential
    if spec is None:
        raise ValueError(f"family {family!r} must define differential testing (Family.differential). Got: None")
    return spec.cases(seed, count)


def differential(impl: Implementation, case: SampleCase, device: str = "cpu") -> Outcome:
    """One random case against the reference's limits: ``n/a`` by the implementation's declared devices, dtypes and
    capabilities; a failure is ``xfail`` when a defect declared for one of the checks the case reaches applies to
    it, else ``fail``; a pass is ``pass``, never ``xpass`` (a random case may miss what a declared defect needs)."""
    spec = get_family(case.family).differential
    reason = impl.supports(device=device, dtype=case.dtype, needs=case.needs(), family=case.family)
    if reason is not None:
        return Outcome("n/a", reason)
    failure = failure_of(spec.check, impl, case, device)
    if not failure:
        return Outcome("pass")
    defect = next((d for name in spec.reached(case) if (d := impl.defect_for(name, case)) is not None), None)
    return classified(failure, defect)
