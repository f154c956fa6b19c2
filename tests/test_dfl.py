"""The dfl family (Distribution Focal Loss: GFL's box loss, ultralytics' DFLoss, mmdet's distribution_focal_loss): the
pinned message of every rejected argument, the record and its workload, the oracle chain (mpmath -> dfl_reference ->
the implementations that claim accuracy), the peers' declared defects on their witnesses and the mappings onto them,
the power of each of the family's own checks on a mutant, and the accuracy claim.

Its checks run over the registry in ``tests/test_conformance.py``, its mutants in ``tests/test_mutants.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import approx_fprime

from focalbench.arena.accuracy import sweep as accuracy_sweep
from focalbench.arena.core import all_checks, evaluate
from focalbench.arena.families.dfl.cases import DflCase, bad_inputs
from focalbench.arena.families.dfl.oracle import dfl_numerical_gradient, dfl_row
from focalbench.arena.family import get_family
from focalbench.arena.mutation import as_implementation
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.cli import main
from focalbench.implementations.dfl_reference import reference_rows
from focalbench.losses.dfl.api import distribution_focal_loss
from focalbench.losses.dfl.semantics import DEFAULTS, validate

FAMILY = "dfl"
_RANGE = r"target values must be in \[0, 2\] \(the bins' range, n - 1 with n = 3 bins along the logits' last axis\)\. "
_BINS = r"logits must have the bins along their last axis, at least 2 of them: shape \(\.\.\., n\), n >= 2\. Got: "
_FLOAT = r"target must be a floating-point tensor of continuous bin positions in \[0, n - 1\] \(a distance in bins\)\. "
_SHAPE = r"target must have the logits' shape without the bin axis, \(4,\)\. Got: shape "
_REDUCTION = r"reduction must be one of 'mean', 'sum', 'none'\. Got: "
MESSAGES = {
    "logits-int": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int64",
    "logits-list": r"logits must be a torch\.Tensor\. Got: list",
    "logits-0dim": _BINS + r"shape \(\)",
    "logits-one-bin": _BINS + r"shape \(4, 1\)",
    "target-list": r"target must be a torch\.Tensor\. Got: list",
    "target-int": _FLOAT + r"Got: torch\.int64",
    "target-bool": _FLOAT + r"Got: torch\.bool",
    "target-with-bins": _SHAPE + r"\(4, 3\)",
    "target-shape": _SHAPE + r"\(3,\)",
    "target-sides": _SHAPE + r"\(4, 1\)",
    "target-above-range": _RANGE + r"Got: 1 value\(s\) outside, e\.g\. \[2\.5\]",
    "target-last-bin-index": _RANGE + r"Got: 4 value\(s\) outside, e\.g\. \[3\.0, 3\.0, 3\.0, 3\.0\]",
    "target-negative": _RANGE + r"Got: 1 value\(s\) outside, e\.g\. \[-0\.25\]",
    "target-nan": _RANGE + r"Got: 2 value\(s\) outside, e\.g\. \[nan, nan\]",
    "target-inf": _RANGE + r"Got: 2 value\(s\) outside, e\.g\. \[inf, inf\]",
    "target-requires-grad": r"target must not require grad: the loss is differentiable with respect to the logits only",
    "target-device": r"target must be on the logits' device",
    "reduction-unknown": _REDUCTION + r"'batchwise_mean'",
    "reduction-capitalized": _REDUCTION + r"'Mean'",
    "reduction-None": _REDUCTION + r"None",
}


@pytest.mark.parametrize("bad", bad_inputs(), ids=lambda b: b.name)
def test_every_bad_input_is_refused_with_its_pinned_message(bad, device):
    if bad.device == "cuda" and device != "cuda":
        pytest.skip("needs --device cuda")
    logits, target, kwargs = bad.call_args(device)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        validate(logits, target, **kwargs)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        distribution_focal_loss(logits, target, **kwargs)


def test_every_bad_input_has_a_pinned_message():
    assert {b.name for b in bad_inputs()} == set(MESSAGES)


def test_a_bad_argument_is_refused_before_a_kernel_runs(monkeypatch):
    """Every bad input but a target's values (which the CPU kernel counts in its own sweep, raising the same error)
    is refused by validation, before any kernel runs."""
    import focalbench.losses.common as common

    monkeypatch.setattr(common, "fused_loss", lambda *a, **k: pytest.fail("a kernel ran for a bad call"))
    for bad in bad_inputs():
        if bad.device == "cpu" and not bad.device_value:
            logits, target, kwargs = bad.call_args("cpu")
            with pytest.raises(bad.error, match=MESSAGES[bad.name]):
                distribution_focal_loss(logits, target, **kwargs)


def test_the_record_describes_the_family():
    family = get_family(FAMILY)
    assert family.defaults == DEFAULTS == {"reduction": "mean"}
    assert (family.reference, family.gradient_penalty_reference, family.recommended) == (
        "dfl_reference", "dfl_autograd", "dfl_fused")  # fmt: skip
    assert family.product == "focalbench:distribution_focal_loss" and dict(family.parameters) == {}
    assert family.class_axis == -1 and family.order == 4
    assert {s.name: s.shape for s in family.workload.shapes} == {
        "yolo_positives": (33600, 16), "gfl_positives": (65536, 17), "yolo_batch": (537600, 16)}  # fmt: skip
    names = list(family.all_checks())
    assert len(names) >= 14 and all(name.startswith("dfl_") for name in names)


def test_the_workload_is_a_yolo_heads_positives_and_the_baseline_ultralytics_arithmetic():
    family = get_family(FAMILY)
    shape = family.workload.shapes[0]
    logits, target = family.workload.inputs(shape, torch.float32, "cpu")
    assert logits.shape == (33600, 16) and target.shape == (33600,)
    top = torch.tensor(16 - 1.01, dtype=torch.float32)  # n = 16: where both peers' assigners clamp
    assert bool((target >= 0).all()) and bool((target <= top).all())
    integer = target == target.floor()
    assert 0.1 < integer.float().mean().item() < 0.2 and bool((target == top).any()) and bool((target == 0).any())
    for name in {"dfl_mmdet", "dfl_ultralytics"} & set(list_implementations(family=FAMILY)):  # where installed
        # timed on what their callers pass: neither trips on these targets
        x, t = logits[:4096].double(), target[:4096].double()
        torch.testing.assert_close(get_implementation(name)(x, t, reduction="sum"),
                                   get_implementation("dfl_reference")(x, t, reduction="sum"), rtol=1e-9, atol=0)
    assert family.workload.target_bytes(shape, torch.float32) == 33600 * 4
    x, t = logits[:512], target[:512]
    reference = get_implementation("dfl_reference")
    expected = reference(x.double(), t.double(), reduction="sum")
    torch.testing.assert_close(family.workload.baseline_loss(x.double(), t.double()), expected, rtol=1e-12, atol=0)
    impl = get_implementation(family.recommended)
    torch.testing.assert_close(family.workload.call(impl, x, t, {}).double(), expected, rtol=2e-6, atol=0)


def test_a_hand_computed_element():
    """Three equal logits, y = 0.5: S = 1/3 everywhere, the loss log 3, the gradient 1/3 - (1/2, 1/2, 0)."""
    for loss_fn in (get_implementation("dfl_reference"), distribution_focal_loss):
        x = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
        loss = loss_fn(x, torch.tensor([0.5], dtype=torch.float64), reduction="sum")
        loss.backward()
        assert loss.item() == pytest.approx(math.log(3), rel=1e-15)
        assert x.grad.flatten().tolist() == pytest.approx([1 / 3 - 0.5, 1 / 3 - 0.5, 1 / 3], rel=1e-14)


# --- the oracle chain: mpmath (60 digits) -> dfl_reference -> the implementations that claim accuracy ------------

ROWS = [
    ([0.3, -1.2, 2.0, 0.5], 1.25), ([0.3, -1.2, 2.0, 0.5], 3.0), ([0.3, -1.2, 2.0, 0.5], 0.0),
    ([40.0, 0.0, 0.0, 0.0], 0.0), ([40.0, 0.0, 0.0, 0.0], 2.0**-20), ([0.0, 0.0, 0.0, 40.0], 3.0 - 2.0**-19),
    ([1e20, -1e20, 0.0, 0.0], 0.5), ([-1e20, 1e20, 3.0, -5.0], 2.75), ([700.0, -700.0], 1.0), ([1e4, 1e4 - 3], 0.9),
    ([-2.0, 5.0], 0.3), ([1.0] * 17, 16.0), (list(np.linspace(-3.0, 3.0, 16)), 14.9),
]  # fmt: skip


def _relative(value: float, exact: float) -> float:
    return 0.0 if value == exact else abs(value - exact) / abs(exact)


def test_reference_matches_arbitrary_precision():
    for row, y in ROWS:
        loss, grad = reference_rows(np.array([row]), np.array([y]))
        exact_loss, exact_grad = dfl_row(row, y)
        assert _relative(loss[0], exact_loss) <= 1e-13, (row, y, loss[0], exact_loss)
        scale = max(abs(g) for g in exact_grad)
        assert max(abs(a - e) for a, e in zip(grad[0], exact_grad, strict=True)) <= 1e-13 * scale, (row, y)


@pytest.mark.parametrize(("row", "y"), [([0.3, -1.2, 2.0, 0.5], 1.25), ([3.0, 0.0, -1.0], 2.0), ([1.0, 9.0], 0.0)])
def test_oracle_gradient_matches_numerical_differentiation(row, y):
    exact, numerical = dfl_row(row, y)[1], dfl_numerical_gradient(row, y)
    assert max(abs(a - b) for a, b in zip(exact, numerical, strict=True)) <= 1e-12


def test_reference_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    z, y = rng.normal(scale=2.0, size=(3, 6)), np.array([0.0, 2.5, 5.0])
    for i in range(3):
        numerical = approx_fprime(z[i], lambda row, i=i: reference_rows(row[None], y[i : i + 1])[0][0], 1e-7)
        np.testing.assert_allclose(reference_rows(z, y)[1][i], numerical, rtol=1e-5, atol=1e-6)


def test_infinite_logits_take_their_limits():
    """A bin at -inf is absent (also where its weight is 0: no 0 x inf); a target bin of positive weight at -inf
    gives +inf and the gradient's finite limit S - w; NaN or +inf in a row gives NaN."""
    inf = math.inf
    z = np.array([[0.0, -inf, 1.0], [0.0, 1.0, -inf], [-inf, 0.0, 1.0], [0.0, inf, 1.0], [0.0, math.nan, 1.0]])
    y = np.array([0.0, 0.25, 0.5, 1.0, 1.0])
    loss, grad = reference_rows(z, y)
    s = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    assert loss[0] == pytest.approx(-math.log(s[0]), rel=1e-15)
    assert grad[0].tolist() == pytest.approx([s[0] - 1, 0.0, s[1]], rel=1e-14)
    assert loss[2] == inf and grad[2].tolist() == pytest.approx([-0.5, 1 - s[1] - 0.5, s[1]], rel=1e-14)
    assert np.isnan(loss[3:]).all() and np.isnan(grad[3:]).all()


CLAIMING = [name for name in list_implementations(family=FAMILY)
            if name != get_family(FAMILY).reference and get_implementation(name).known_defects == ()]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", CLAIMING)
def test_within_the_accuracy_bound_at_every_scale(name, dtype, device):
    """Every scale of the sweep (0 to 1e20), integer, fractional and end targets, against the mpmath oracle."""
    impl = get_implementation(name)
    if impl.supports(device=device, dtype=dtype):
        pytest.skip(impl.supports(device=device, dtype=dtype))
    rows = accuracy_sweep([impl], FAMILY, dtype=dtype, device=device)
    worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
    assert max(worst.max_loss_error, worst.max_grad_error) <= ACCURACY_BOUND[dtype], worst


def test_the_sweep_exposes_the_plain_autograd_formula():
    rows = accuracy_sweep([get_implementation("dfl_autograd")], FAMILY, values=(30.0,))
    assert rows[0].max_loss_error == pytest.approx(1.0)  # float32 log_softmax rounds a confident loss e^-30 to 0


# --- the peers: their declared defects on witnesses, and the mappings onto them ------------------------------------


@pytest.fixture(scope="module")
def peers():
    from focalbench.implementations import dfl_mmdet, dfl_ultralytics

    if dfl_ultralytics.UltralyticsDFLoss is None or dfl_mmdet.mmdet_distribution_focal_loss is None:
        pytest.skip("ultralytics or mmdet is not installed (pip install --no-deps ultralytics==8.3.253 mmdet==3.3.0)")
    return dfl_ultralytics.UltralyticsDFLoss, dfl_mmdet.mmdet_distribution_focal_loss


def test_ultralytics_clamps_the_callers_target_and_moves_weight_off_the_last_bin(peers):
    dfloss, _ = peers
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]] * 3)
    target = torch.tensor([[3.0], [2.995], [1.5]])
    loss = dfloss(reg_max=4)(logits, target).flatten()
    assert target.flatten().tolist() == pytest.approx([2.99, 2.99, 1.5], abs=1e-7)  # the caller's tensor, in place
    ours = distribution_focal_loss(logits, torch.tensor([3.0, 2.995, 1.5]), reduction="none")
    assert ours[0].item() == pytest.approx(F.cross_entropy(logits[:1], torch.tensor([3])).item(), rel=1e-6)
    assert loss[0].item() == pytest.approx(ours[0].item() + 0.01 * (1.0 - 0.0), rel=1e-5)  # 0.01 of bin 2's loss
    assert loss[2].item() == pytest.approx(ours[2].item(), rel=1e-6)


def test_mmdet_reads_bin_n_at_the_last_bin(peers):
    _, mmdet_dfl = peers
    logits, target = torch.zeros(2, 4), torch.tensor([1.5, 3.0])
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        mmdet_dfl(logits, target, reduction="none")
    assert distribution_focal_loss(logits, target, reduction="none").tolist() == pytest.approx([math.log(4)] * 2)


def test_the_peers_give_nan_next_to_an_absent_bin_and_round_a_confident_loss_to_zero(peers):
    dfloss, mmdet_dfl = peers
    masked, integer = torch.tensor([[0.0, 1.0, -math.inf, 3.0]]), torch.tensor([1.0])  # bin 2 weighs 0
    assert math.isnan(mmdet_dfl(masked, integer, reduction="none").item())
    assert math.isnan(dfloss(reg_max=4)(masked, integer.view(-1, 1).clone()).item())
    assert distribution_focal_loss(masked, integer).item() == pytest.approx(
        F.cross_entropy(masked, torch.tensor([1])).item(), rel=1e-6)  # fmt: skip
    confident, zero = torch.tensor([[40.0, 0.0, 0.0, 0.0]], dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    exact = 3 * math.exp(-40)  # log1p(3 e^-40)
    assert mmdet_dfl(confident, zero, reduction="none").item() == 0.0
    assert dfloss(reg_max=4)(confident, zero.view(-1, 1).clone()).item() == 0.0
    assert distribution_focal_loss(confident, zero).item() == pytest.approx(exact, rel=1e-14)


def test_mmdet_returns_float32_for_half_logits_and_nan_for_an_empty_mean(peers):
    _, mmdet_dfl = peers
    assert mmdet_dfl(torch.zeros(3, 4, dtype=torch.float16), torch.tensor([1.0, 2.0, 1.5])).dtype == torch.float32
    assert math.isnan(mmdet_dfl(torch.zeros(0, 4), torch.zeros(0)).item())
    assert distribution_focal_loss(torch.zeros(0, 4), torch.zeros(0)).item() == 0.0


def test_the_peers_declare_exactly_these_defects(peers):
    declared = {name: {d.check for d in get_implementation(name).known_defects}
                for name in ("dfl_mmdet", "dfl_ultralytics")}  # fmt: skip
    assert {"dfl_ends_of_the_range", "dfl_absent_bins", "dfl_accurate_at_saturation", "dfl_half_precision",
            "dfl_empty_batch"} <= declared["dfl_mmdet"]  # fmt: skip
    assert {"dfl_inputs_unchanged", "dfl_ends_of_the_range", "dfl_absent_bins", "dfl_deterministic",
            "dfl_accurate_at_saturation"} <= declared["dfl_ultralytics"]  # fmt: skip
    assert "dfl_empty_batch" not in declared["dfl_ultralytics"] and "dfl_rejects_bad_input" not in set().union(
        *declared.values())  # fmt: skip


def test_the_mappings_hold_against_the_installed_peers(peers):
    """ultralytics' BboxLoss: DFLoss on (M x 4, n) logits and (M, 4) sides is the per-box mean of our 'none' loss,
    weighted and divided by target_scores_sum; mmdet's 'none' loss of (N, n) and (N,) is ours, its weight and
    avg_factor applied after (targets below n - 1.01, where neither peer's defects show)."""
    dfloss, mmdet_dfl = peers
    g = torch.Generator().manual_seed(31)
    logits = torch.randn(50, 4, 16, generator=g, dtype=torch.float64) * 3
    target = torch.rand(50, 4, generator=g, dtype=torch.float64) * 14.98
    weight = torch.rand(50, 1, generator=g, dtype=torch.float64)
    per_box = dfloss(reg_max=16)(logits.view(-1, 16), target.clone())
    ours = distribution_focal_loss(logits, target, reduction="none")
    torch.testing.assert_close(per_box, ours.mean(-1, keepdim=True), rtol=1e-12, atol=0)
    torch.testing.assert_close((per_box * weight).sum() / 7.5, (ours.mean(-1, keepdim=True) * weight).sum() / 7.5,
                               rtol=1e-12, atol=0)  # fmt: skip
    flat_logits, flat_target = logits.view(-1, 16), target.view(-1)
    anchor_weight = weight.expand(50, 4).reshape(-1)
    mmdet = mmdet_dfl(flat_logits, flat_target, weight=anchor_weight, avg_factor=4 * 37.0)
    expected = (distribution_focal_loss(flat_logits, flat_target, reduction="none") * anchor_weight).sum() / (
        4 * 37.0 + torch.finfo(torch.float32).eps)  # fmt: skip
    torch.testing.assert_close(mmdet, expected, rtol=1e-12, atol=0)


# --- the checks' power, and the cases ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "mutant"),
    [
        ("dfl_cross_entropy_at_integer_targets", "both-bins-last-at-end"),
        ("dfl_two_cross_entropies", "weights-swapped"),
        ("dfl_gradient_is_softmax_minus_weights", "gradient-sign-flipped"),
        ("dfl_at_least_the_entropy", "entropy-subtracted"),
        ("dfl_at_least_the_entropy", "loss-sign-flipped"),
        ("dfl_translation_invariant", "missing-max-shift"),
        ("dfl_ends_of_the_range", "target-clamped-below-end"),
        ("dfl_reductions", "mean-over-rows"),
        ("dfl_gradcheck", "lse-detached"),
        ("dfl_gradcheck", "gradient-ignores-upstream"),
        ("dfl_create_graph", "logit-terms-detached"),
        ("dfl_finite_at_saturation", "log-of-softmax"),
        ("dfl_saturated_values", "logits-clamped"),
        ("dfl_accurate_at_saturation", "lse-minus-logits"),
        ("dfl_absent_bins", "zero-weight-term-nan"),
        ("dfl_half_precision", "half-arithmetic"),
        ("dfl_inputs_unchanged", "target-clamped-in-place"),
        ("dfl_deterministic", "target-clamped-in-place"),
        ("dfl_propagates_nan", "nan-to-num"),
        ("dfl_empty_batch", "mean-nan-when-empty"),
        ("dfl_rejects_bad_input", "target-nan-accepted"),
    ],
)
def test_each_family_check_can_fail(check, mutant):
    """Beyond matches_reference, which kills most mutants first: each of the family's own checks, alone, catches a bug
    it is written for, and passes the catalogue's correct baseline."""
    catalogue = get_family(FAMILY).mutants()
    the_check = all_checks(FAMILY)[check]
    impl = as_implementation(catalogue, mutant)
    assert any(evaluate(impl, the_check, case).status == "fail" for case in the_check.cases()), (check, mutant)
    baseline = as_implementation(catalogue, None)
    assert all(evaluate(baseline, the_check, case).status in ("pass", "n/a") for case in the_check.cases())


def test_cases_are_reproducible_from_their_seed_and_strided_where_they_say():
    case = DflCase(shape=(6, 4, 17), targets="ends", magnitude=30.0, nan=0.1, layout="non_contiguous", seed=9)
    (x1, t1), (x2, t2) = case.make(), case.make()
    assert torch.equal(x1.nan_to_num(), x2.nan_to_num()) and torch.equal(t1, t2)
    assert not x1.is_contiguous() and not t1.is_contiguous() and x1.shape == (6, 4, 17) and t1.shape == (6, 4)
    assert case.id == "6x4x17-fp32-mean-ends-strided-m30-nan0.1-seed9"
    top = DflCase(shape=(30, 16), targets="top").make()[1]
    assert bool((top > 15 - 0.01).all()) and bool((top <= 15).all()) and bool((top == 15).any())


def test_the_mutants_command_scores_the_family(capsys):
    assert main(["mutants", "--family", FAMILY, "--mutant", "weights-swapped", "--mutant", "no-clamp-at-end"]) == 0
    out = capsys.readouterr().out
    assert "dfl: 2 / 2 mutants killed (100.0 %)" in out and "baseline passes every check: yes" in out
