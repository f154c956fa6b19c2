"""Property-based search of the argument space (hypothesis): the product's losses against the float64 reference's
limits on inputs hypothesis draws and, on a failure, shrinks to a minimal case (printed as a ``Case(...)`` /
``SigmoidCase(...)`` that rebuilds its tensors; hypothesis prints the seed to reproduce the search with
``--hypothesis-seed``).

Beside the seeded cases of the checks and the randomized differential test, this layer searches the product
arguments' cross product — shapes with size-1 and empty dims, every dtype of the logits and the target, gamma
(fractional, as a tensor), every alpha form, every reduction, ignore masks, -inf masks, impossible targets, strides —
for the corner where a fast path is wrong. 40 examples a family in the default run (~2 s), 400 under ``-m slow``.
"""

from __future__ import annotations

import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")  # the test extra installs it; a bare checkout may not have it
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from focalbench.arena.families.sigmoid.cases import SigmoidCase  # noqa: E402
from focalbench.arena.families.softmax.cases import Case  # noqa: E402
from focalbench.arena.family import get_family  # noqa: E402
from focalbench.arena.registry import get_implementation  # noqa: E402

DTYPES = st.sampled_from((torch.float32, torch.float64, torch.float16, torch.bfloat16))
GAMMAS = st.one_of(st.sampled_from((0.0, 0.5, 1.0, 2.0, 5.0)), st.floats(0.0, 5.0, allow_nan=False, width=32))
REDUCTIONS = st.sampled_from(("mean", "sum", "none"))
SEEDS = st.integers(0, 2**31 - 1)
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False)


@st.composite
def softmax_cases(draw) -> Case:
    classes = draw(st.sampled_from((2, 3, 5, 16, 130)))
    spatial = draw(st.lists(st.integers(1, 4), max_size=2 if classes < 100 else 0))
    ignore_fraction = draw(st.sampled_from((0.0, 0.0, 0.3, 1.0)))
    target_dtype = draw(st.sampled_from((torch.int64, torch.int32)))
    return Case(
        shape=(draw(st.integers(0, 9)), classes, *spatial),
        dtype=draw(DTYPES),
        gamma=float(draw(GAMMAS)),
        gamma_tensor=draw(st.booleans()),
        alpha_kind=draw(st.sampled_from(("none", "scalar", "zero", "per_class"))),
        alpha_form=draw(st.sampled_from(("list", "tensor", "tensor-fp32", "int-tensor", "numpy"))),
        reduction=draw(REDUCTIONS),
        ignore_fraction=ignore_fraction,
        garbage=ignore_fraction > 0 and draw(st.booleans()),
        masked=draw(st.sampled_from((0.0, 0.0, 0.5, 1.0))),
        impossible=draw(st.sampled_from((0.0, 0.0, 0.3))),
        layout=draw(st.sampled_from(("contiguous", "non_contiguous"))),
        scale=draw(st.sampled_from((1.0, 3.0, 30.0))),
        target_dtype=target_dtype,
        seed=draw(SEEDS),
        label="hypothesis",
    )


@st.composite
def sigmoid_cases(draw) -> SigmoidCase:
    shape = tuple(draw(st.lists(st.integers(0, 6), max_size=3)))
    return SigmoidCase(
        shape=shape,
        dtype=draw(DTYPES),
        gamma=float(draw(GAMMAS)),
        alpha=draw(st.sampled_from((0.25, -1.0, 0.0, 1.0, 0.5))),
        reduction=draw(REDUCTIONS),
        targets=draw(st.sampled_from(("hard", "soft", "edge"))),
        layout=draw(st.sampled_from(("contiguous", "non_contiguous"))),
        scale=draw(st.sampled_from((1.0, 3.0, 30.0))),
        infinite=draw(st.sampled_from((0.0, 0.0, 0.2))),
        seed=draw(SEEDS),
        label="hypothesis",
    )


def _holds(family: str, implementation: str, case) -> None:
    impl = get_implementation(implementation)
    if impl.supports(dtype=case.dtype, needs=case.needs(), family=family) is not None:
        return
    failure = get_family(family).differential.check(impl, case, "cpu")
    assert failure is None, f"{implementation} on {case!r}: {failure}"


@pytest.mark.parametrize("implementation", ["fused", "fused_eager"])
@QUICK
@given(case=softmax_cases())
def test_the_softmax_product_matches_the_reference_wherever_hypothesis_looks(implementation: str, case: Case) -> None:
    _holds("softmax", implementation, case)


@pytest.mark.parametrize("implementation", ["sigmoid_fused", "sigmoid_fused_eager"])
@QUICK
@given(case=sigmoid_cases())
def test_the_sigmoid_product_matches_the_reference_wherever_hypothesis_looks(implementation: str, case) -> None:
    _holds("sigmoid", implementation, case)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=softmax_cases())
def test_the_softmax_product_holds_over_a_long_search(case: Case) -> None:
    _holds("softmax", "fused", case)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=sigmoid_cases())
def test_the_sigmoid_product_holds_over_a_long_search(case) -> None:
    _holds("sigmoid", "sigmoid_fused", case)
