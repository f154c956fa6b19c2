"""The varifocal family: ``varifocal_loss`` / ``VarifocalLoss`` (VarifocalNet's IoU-aware loss), its semantics and
pinned messages, the oracle chain (mpmath -> ``varifocal_reference`` -> the product within 2e-6 in float32), RT-DETR's
detached weight, the mappings of mmdet's and ultralytics' normalizers and arguments on numbers, saturated logits,
half precision, the custom operator under ``torch.compile(fullgraph=True)``, and the power of the family's checks.

Its checks run over the registry in ``tests/test_conformance.py`` like every family's; the mutation score in
``tests/test_mutants.py`` (``-m mutants``).
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import approx_fprime

from focalbench.arena.accuracy import sweep as accuracy_sweep
from focalbench.arena.core import all_checks, evaluate
from focalbench.arena.families.varifocal.cases import VarifocalCase, bad_inputs, detached_cases, gradcheck_cases
from focalbench.arena.families.varifocal.oracle import varifocal_element, varifocal_numerical_gradient
from focalbench.arena.family import get_family
from focalbench.arena.mutation import as_implementation
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations.varifocal_reference import reference_elements
from focalbench.losses.varifocal.api import RECOMMENDED_VARIFOCAL, VarifocalLoss, varifocal_loss
from focalbench.losses.varifocal.semantics import DEFAULTS, ultralytics_targets, validate

FAMILY = "varifocal"
_ONE_OF = r"must be a floating-point tensor of IoU-aware scores in \[0, 1\], the logits' shape"
MESSAGES = {
    "logits-int": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int64",
    "logits-list": r"logits must be a torch\.Tensor\. Got: list",
    "target-list": r"target must be a torch\.Tensor\. Got: list",
    "target-int": rf"target {_ONE_OF} \(ultralytics' \(gt_score, label\) pair: see ultralytics_targets\)\. "
    r"Got: torch\.int64",
    "target-bool": rf"target {_ONE_OF} .* Got: torch\.bool",
    "target-shape": r"target must have the logits' shape \(4, 3\)\. Got: shape \(4, 1\)",
    "target-transposed": r"target must have the logits' shape \(4, 3\)\. Got: shape \(3, 4\)",
    "target-above-one": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[1\.6000",
    "target-negative": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[-0\.8000",
    "target-nan": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[nan, nan, nan, nan\]",
    "target-meta-device": r"target must be on the logits' device \(cpu\)\. Got: target on meta",
    "target-device": r"target must be on the logits' device",
    "target-requires-grad": r"target must not require grad: the loss is differentiable with respect to the logits "
    r"only \(detach the IoU scores: target\.detach\(\)\)",
    "alpha-negative": r"alpha must be a finite number >= 0\. Got: -0\.25",
    "alpha-nan": r"alpha must be a finite number >= 0\. Got: nan",
    "alpha-inf": r"alpha must be a finite number >= 0\. Got: inf",
    "alpha-str": r"alpha must be a real number >= 0\. Got: str '0\.75'",
    "alpha-bool": r"alpha must be a real number >= 0\. Got: bool True",
    "alpha-1d-tensor": r"alpha must be a real number >= 0 or a 0-dim floating tensor\. Got: tensor of shape \(1,\)",
    "gamma-negative": r"gamma must be a finite number >= 0\. Got: -0\.5",
    "gamma-nan": r"gamma must be a finite number >= 0\. Got: nan",
    "gamma-inf": r"gamma must be a finite number >= 0\. Got: inf",
    "gamma-str": r"gamma must be a real number >= 0\. Got: str '2'",
    "gamma-bool": r"gamma must be a real number >= 0\. Got: bool True",
    "gamma-1d-tensor": r"gamma must be a real number >= 0 or a 0-dim floating tensor\. Got: tensor of shape \(1,\)",
    "iou_weighted-int": r"iou_weighted must be a bool \(True or False\)\. Got: int 1",
    "iou_weighted-str": r"iou_weighted must be a bool \(True or False\)\. Got: str 'False'",
    "detach_weight-int": r"detach_weight must be a bool \(True or False\)\. Got: int 0",
    "detach_weight-None": r"detach_weight must be a bool \(True or False\)\. Got: NoneType None",
    "detach_weight-tensor": r"detach_weight must be a bool \(True or False\)\. Got: Tensor tensor\(True\)",
    "reduction-unknown": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'batchwise_mean'",
    "reduction-capitalized": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'Mean'",
    "reduction-None": r"reduction must be one of 'mean', 'sum', 'none'\. Got: None",
}


# --- semantics --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", bad_inputs(), ids=lambda b: b.name)
def test_every_bad_input_is_refused_with_its_pinned_message(bad, device):
    if bad.device == "cuda" and device != "cuda":
        pytest.skip("needs --device cuda")
    logits, target, kwargs = bad.call_args(device)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        validate(logits, target, **kwargs)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        varifocal_loss(logits, target, **kwargs)


def test_every_bad_input_has_a_pinned_message():
    assert {b.name for b in bad_inputs()} == set(MESSAGES)


def test_the_defaults_have_one_home():
    """DEFAULTS (the registry's common signature) agree with validate, the function and the module: mmdet's."""
    assert DEFAULTS == {"alpha": 0.75, "gamma": 2.0, "iou_weighted": True, "detach_weight": False, "reduction": "mean"}
    for fn in (validate, varifocal_loss, VarifocalLoss.__init__):
        parameters = inspect.signature(fn).parameters
        assert {name: parameters[name].default for name in DEFAULTS} == DEFAULTS, fn


def _definition(x, q, alpha=0.75, gamma=2.0, iou_weighted=True, detach_weight=False):
    """The loss as the paper writes it, in float64 autograd: q BCE(x, q) at q > 0, alpha p^gamma BCE(x, 0) at q = 0
    (RT-DETR's sigmoid(x).detach() in the weight with ``detach_weight``)."""
    x, q = x.double(), q.double()
    p = torch.sigmoid(x)
    p_weight = p.detach() if detach_weight else p
    bce = F.binary_cross_entropy_with_logits(x, q, reduction="none")
    return torch.where(q > 0, q if iou_weighted else torch.ones_like(q), alpha * p_weight**gamma) * bce


@pytest.mark.parametrize("detach_weight", [False, True])
@pytest.mark.parametrize("iou_weighted", [True, False])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.75, 2.0), (0.25, 0.5), (2.0, 0.0), (0.0, 3.0)])
def test_loss_and_gradient_are_the_definitions(alpha, gamma, iou_weighted, detach_weight, device):
    """Loss and gradient equal autograd through the definition (with RT-DETR's detached weight: the gradient is
    w (p - q), not the loss's derivative), at ordinary logits, each reduction."""
    g = torch.Generator().manual_seed(11)
    logits = (torch.randn(64, 80, generator=g, dtype=torch.float64) * 3).to(device)
    target = torch.where(torch.rand(64, 80, generator=g) < 0.05, 1 - torch.rand(64, 80, generator=g), 0.0)
    target = target.double().to(device)
    keywords = {"alpha": alpha, "gamma": gamma, "iou_weighted": iou_weighted, "detach_weight": detach_weight}
    for reduction, reduce in (("none", lambda v: v), ("sum", torch.sum), ("mean", torch.mean)):
        x = logits.clone().requires_grad_(True)
        expected_x = logits.clone().requires_grad_(True)
        loss = varifocal_loss(x, target, reduction=reduction, **keywords)
        expected = reduce(_definition(expected_x, target, **keywords))
        torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-14)
        upstream = torch.rand(loss.shape, generator=g, dtype=torch.float64).to(device)
        (grad,) = torch.autograd.grad(loss, x, upstream)
        (expected_grad,) = torch.autograd.grad(expected, expected_x, upstream)
        torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-14)
    if detach_weight and gamma:  # the detached gradient is not the loss's derivative: they differ at the negatives
        x = logits.clone().requires_grad_(True)
        (attached,) = torch.autograd.grad(_definition(x, target, alpha, gamma, iou_weighted).sum(), x)
        assert not torch.allclose(grad.double(), attached * upstream, rtol=1e-3) or alpha == 0


def test_a_call_reads_nothing_of_what_a_bad_argument_would_spoil():
    """Bad input raises before any work: the target's range is checked before a kernel runs (a target above 1 in a
    large batch is refused, not computed on)."""
    logits = torch.randn(1000, 80, requires_grad=True)
    target = torch.zeros(1000, 80)
    target[999, 79] = 1.5
    with pytest.raises(ValueError, match=r"target values must be in \[0, 1\]\. Got: 1 value\(s\) outside"):
        varifocal_loss(logits, target)
    assert logits.grad is None


# --- the oracle chain ---------------------------------------------------------------------------------------------

# (logit, target): ordinary, saturated of both signs up to 1e20, at negatives, hard and IoU-like positives, soft edges
ELEMENTS = [
    (0.3, 0.0), (-2.0, 0.0), (17.0, 0.0), (-17.0, 0.0), (40.0, 0.0), (-40.0, 0.0), (300.0, 0.0), (-300.0, 0.0),
    (1e20, 0.0), (-1e20, 0.0), (0.3, 1.0), (40.0, 1.0), (-40.0, 1.0), (1e20, 1.0), (-1e20, 1.0), (0.7, 0.3),
    (-5.0, 0.85), (25.0, 1e-30), (1e20, 0.6), (-1e20, 0.6), (0.0, 0.5),
]  # fmt: skip
WEIGHTINGS = [(True, False), (False, False), (True, True)]


def _relative(value: float, exact: float) -> float:
    return 0.0 if value == exact else abs(value - exact) / abs(exact)


@pytest.mark.parametrize("weighting", WEIGHTINGS, ids=lambda w: f"iou{w[0]}-detach{w[1]}")
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [0.75, 2.0])
def test_reference_matches_arbitrary_precision(alpha, gamma, weighting):
    x = np.array([e[0] for e in ELEMENTS])
    q = np.array([e[1] for e in ELEMENTS])
    loss, grad = reference_elements(x, q, alpha, gamma, *weighting)
    for i, (xi, qi) in enumerate(ELEMENTS):
        exact_loss, exact_grad = varifocal_element(xi, qi, gamma, alpha, *weighting)
        assert _relative(loss[i], exact_loss) <= 1e-13, (xi, qi, loss[i], exact_loss)
        assert _relative(grad[i], exact_grad) <= 1e-13, (xi, qi, grad[i], exact_grad)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize(("x", "q"), [(0.3, 0.0), (-2.0, 0.0), (3.0, 0.3), (-17.0, 0.0), (1.5, 1.0)])
def test_oracle_chain_rule_matches_numerical_differentiation(x, q, gamma):
    for iou_weighted in (True, False):
        closed = varifocal_element(x, q, gamma, 0.75, iou_weighted)[1]
        assert _relative(closed, varifocal_numerical_gradient(x, q, gamma, 0.75, iou_weighted)) <= 1e-12


def test_the_detached_oracle_drops_exactly_the_weights_derivative():
    """At a negative the detached gradient is alpha p^gamma p; the full one adds alpha gamma p^gamma (1 - p) BCE."""
    x, gamma, alpha = 1.3, 2.0, 0.75
    p = 1 / (1 + math.exp(-x))
    bce = math.log1p(math.exp(x))
    detached = varifocal_element(x, 0.0, gamma, alpha, detach_weight=True)[1]
    full = varifocal_element(x, 0.0, gamma, alpha)[1]
    assert _relative(detached, alpha * p**gamma * p) <= 1e-14
    assert _relative(full - detached, alpha * gamma * p**gamma * (1 - p) * bce) <= 1e-13


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_reference_gradient_matches_finite_differences(gamma):
    rng = np.random.default_rng(7)
    x = rng.normal(scale=2.0, size=12)
    q = np.where(rng.uniform(size=12) < 0.5, rng.uniform(size=12), 0.0)

    def total(flat):
        return reference_elements(flat, q, 0.75, gamma)[0].sum()

    np.testing.assert_allclose(reference_elements(x, q, 0.75, gamma)[1], approx_fprime(x, total, 1e-7), rtol=1e-5,
                               atol=1e-6)  # fmt: skip


def test_the_product_is_within_the_accuracy_bound_of_the_oracle_at_every_logit(device):
    """float32, every magnitude of the sweep (0 to 1e20), both signs, targets 0, 1 and 0.3, gammas 0 to 5, alpha 0.75
    and 0.25, the three weightings: every loss and gradient element within 2e-6 of the mpmath oracle."""
    rows = accuracy_sweep([get_implementation(RECOMMENDED_VARIFOCAL)], FAMILY, dtype=torch.float32, device=device)
    worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
    assert max(worst.max_loss_error, worst.max_grad_error) <= ACCURACY_BOUND[torch.float32], worst
    assert {r.gap for r in rows} == set(get_family(FAMILY).sweep.values) and max(r.gap for r in rows) == 1e20


@pytest.mark.slow
def test_the_product_and_the_reference_are_within_the_float64_bound(device):
    for name in (RECOMMENDED_VARIFOCAL, get_family(FAMILY).reference):
        rows = accuracy_sweep([get_implementation(name)], FAMILY, dtype=torch.float64, device=device)
        worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
        assert max(worst.max_loss_error, worst.max_grad_error) <= ACCURACY_BOUND[torch.float64], (name, worst)


# --- saturated logits and half precision ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e4, 1e10, 1e20])
def test_saturated_logits_give_their_asymptotes(magnitude, dtype, device):
    """|x| = 1e4 .. 1e20, both signs: no NaN or inf; a negative at +x costs alpha x with gradient alpha (at -x nothing),
    a positive q costs q (1 - q) x at +x and q^2 x at -x, with gradients q (1 - q) and -q^2."""
    q = 0.6
    logits = torch.tensor([magnitude, -magnitude, magnitude, -magnitude], dtype=dtype, device=device)
    target = torch.tensor([0.0, 0.0, q, q], dtype=dtype, device=device)
    for gamma in (0.0, 0.5, 2.0, 5.0):
        x = logits.clone().requires_grad_(True)
        loss = varifocal_loss(x, target, gamma=gamma, reduction="none")
        loss.sum().backward()
        expected = torch.tensor(
            [0.75 * magnitude, 0.0, q * (1 - q) * magnitude, q * q * magnitude], dtype=torch.float64
        )
        torch.testing.assert_close(loss.double().cpu(), expected.to(dtype).double(), rtol=1e-6, atol=0)
        expected_grad = torch.tensor([0.75, 0.0, q * (1 - q), -q * q], dtype=dtype)
        torch.testing.assert_close(x.grad.cpu(), expected_grad, rtol=1e-6, atol=0)


def test_infinite_logits_take_their_limits():
    """+-inf logits (not a claim of the checks: the product's limits): a negative at +inf costs +inf with gradient
    alpha, at -inf nothing; a positive's loss is +inf (0 where it agrees: q = 1 at +inf); gradients finite."""
    logits = torch.tensor([math.inf, -math.inf, math.inf, -math.inf, math.inf], requires_grad=True)
    target = torch.tensor([0.0, 0.0, 0.6, 0.6, 1.0])
    loss = varifocal_loss(logits, target, reduction="none")
    loss.sum().backward()
    assert loss.tolist() == [math.inf, 0.0, math.inf, math.inf, 0.0]
    torch.testing.assert_close(logits.grad, torch.tensor([0.75, 0.0, 0.6 * 0.4, -0.36, 0.0]))
    alpha_zero = varifocal_loss(logits.detach(), target, alpha=0.0, reduction="none")
    assert alpha_zero[0].item() == 0.0  # a negative that weighs nothing costs nothing, even at +inf


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_computed_in_float32(dtype):
    g = torch.Generator().manual_seed(4)
    logits = (torch.randn(64, 80, generator=g) * 400).to(dtype).requires_grad_(True)  # a float16 sum overflows
    target = torch.where(torch.rand(64, 80, generator=g) < 0.05, torch.rand(64, 80, generator=g), 0.0).to(dtype)
    loss = varifocal_loss(logits, target)
    assert loss.dtype == dtype and bool(torch.isfinite(loss))
    expected = varifocal_loss(logits.detach().double(), target.double())
    torch.testing.assert_close(loss.double(), expected.to(dtype).double(), rtol=0, atol=0)
    loss.backward()
    assert logits.grad.dtype == dtype and bool(torch.isfinite(logits.grad).all())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_loss = varifocal_loss(logits, target, reduction="sum")
    assert autocast_loss.dtype == torch.float32
    torch.testing.assert_close(autocast_loss, varifocal_loss(logits.float(), target.float(), reduction="sum"))


# --- the detectors' conventions, on numbers -------------------------------------------------------------------------


def test_mmdet_avg_factor_is_the_sum_over_avg_factor_plus_eps():
    """mmdet 3.3: loss = BCE_with_logits * focal_weight, weight_reduce_loss(loss, weight, 'mean', avg_factor) =
    (loss * weight).sum() / (avg_factor + eps), eps = torch.finfo(torch.float32).eps; without avg_factor a mean."""
    g = torch.Generator().manual_seed(21)
    pred = torch.randn(200, 80, generator=g, dtype=torch.float64) * 3
    target = torch.where(torch.rand(200, 80, generator=g) < 0.02, torch.rand(200, 80, generator=g), 0.0).double()
    weight = (torch.rand(200, 1, generator=g) < 0.9).double()  # mmdet's per-anchor weight (ignored anchors: 0)
    pred_sigmoid = pred.sigmoid()
    focal_weight = target * (target > 0) + 0.75 * (pred_sigmoid - target).abs().pow(2.0) * (target <= 0)
    mmdet_elements = F.binary_cross_entropy_with_logits(pred, target, reduction="none") * focal_weight
    avg_factor = float((target > 0).sum())
    mmdet_loss = (mmdet_elements * weight).sum() / (avg_factor + torch.finfo(torch.float32).eps)
    ours = (varifocal_loss(pred, target, reduction="none") * weight).sum() / (
        avg_factor + torch.finfo(torch.float32).eps
    )
    torch.testing.assert_close(ours, mmdet_loss, rtol=1e-12, atol=0)
    torch.testing.assert_close(varifocal_loss(pred, target), mmdet_elements.mean(), rtol=1e-12, atol=0)
    unweighted = target.gt(0).double() + 0.75 * (pred_sigmoid - target).abs().pow(2.0) * (target <= 0)
    torch.testing.assert_close(varifocal_loss(pred, target, iou_weighted=False, reduction="sum"),
                               (F.binary_cross_entropy_with_logits(pred, target, reduction="none") * unweighted).sum(),
                               rtol=1e-12, atol=0)  # fmt: skip


def test_ultralytics_pair_and_mean_of_queries():
    """ultralytics: weight = alpha p^gamma (1 - label) + gt_score label, loss = (BCE(x, gt_score) * weight).mean(1)
    .sum() on (batch, queries, classes): our "sum" over the number of queries, with ultralytics_targets' target and
    weight (a label whose score is 0 weighs nothing there)."""
    g = torch.Generator().manual_seed(22)
    batch, queries, classes = 2, 300, 80
    pred = torch.randn(batch, queries, classes, generator=g, dtype=torch.float64) * 3
    label = torch.zeros(batch, queries, classes)
    label[:, :30, 0] = 1.0
    label[:, 30:40, 5] = 1.0
    gt_score = (label * torch.rand(batch, queries, classes, generator=g)).double()
    gt_score[0, 0, 0] = 0.0  # a matched query that does not overlap its box
    weight = 0.75 * pred.sigmoid().pow(2.0) * (1 - label) + gt_score * label
    expected = (F.binary_cross_entropy_with_logits(pred, gt_score, reduction="none") * weight).mean(1).sum()
    target, element_weight = ultralytics_targets(gt_score, label)
    assert element_weight.sum() == target.numel() - 1 and element_weight[0, 0, 0] == 0
    ours = (varifocal_loss(pred, target, reduction="none") * element_weight).sum() / queries
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=0)
    plain_label = label.clone()
    plain_label[0, 0, 0] = 0.0  # without that query: the plain "sum" / queries
    plain_score = gt_score * plain_label
    weight = 0.75 * pred.sigmoid().pow(2.0) * (1 - plain_label) + plain_score * plain_label
    expected = (F.binary_cross_entropy_with_logits(pred, plain_score, reduction="none") * weight).mean(1).sum()
    target, _ = ultralytics_targets(plain_score, plain_label.bool())
    torch.testing.assert_close(varifocal_loss(pred, target, reduction="sum") / queries, expected, rtol=1e-12, atol=0)


def test_ultralytics_targets_refuses_what_is_no_varifocal_loss():
    score, label = torch.tensor([0.5, 0.0]), torch.tensor([1, 0])
    with pytest.raises(
        ValueError, match=r"gt_score must be 0 where label is 0 .* Got: 1 nonzero score\(s\) at label 0"
    ):
        ultralytics_targets(torch.tensor([0.5, 0.2]), label)
    with pytest.raises(ValueError, match=r"label values must be 0 or 1\. Got: 1 value\(s\) other, e\.g\. \[2\]"):
        ultralytics_targets(score, torch.tensor([2, 0]))
    with pytest.raises(ValueError, match=r"gt_score values must be in \[0, 1\]\. Got: 1 value\(s\) outside"):
        ultralytics_targets(torch.tensor([1.5, 0.0]), label)
    with pytest.raises(ValueError, match=r"label must have gt_score's shape \(2,\)\. Got: shape \(1,\)"):
        ultralytics_targets(score, torch.tensor([1]))
    with pytest.raises(TypeError, match=r"gt_score must be a floating-point tensor .* Got: torch\.int64"):
        ultralytics_targets(torch.tensor([1, 0]), label)
    with pytest.raises(TypeError, match=r"label must be a tensor of 0s and 1s .* Got: list"):
        ultralytics_targets(score, [1, 0])


# --- the module, the operator, compile ------------------------------------------------------------------------------


def test_the_module_stores_checked_arguments_and_calls_the_function():
    criterion = VarifocalLoss(alpha=0.5, gamma=1.0, iou_weighted=False, detach_weight=True, reduction="sum")
    logits, target = torch.randn(6, 4), torch.where(torch.rand(6, 4) < 0.3, torch.rand(6, 4), 0.0)
    expected = varifocal_loss(logits, target, alpha=0.5, gamma=1.0, iou_weighted=False, detach_weight=True,
                              reduction="sum")  # fmt: skip
    assert torch.equal(criterion(logits, target), expected)
    assert repr(criterion) == ("VarifocalLoss(alpha=0.5, gamma=1.0, iou_weighted=False, detach_weight=True, "
                               "reduction='sum')")  # fmt: skip
    criterion.gamma = 3.0
    assert torch.equal(criterion(logits, target), varifocal_loss(logits, target, alpha=0.5, gamma=3.0,
                       iou_weighted=False, detach_weight=True, reduction="sum"))  # fmt: skip
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0"):
        VarifocalLoss(alpha=-1.0)
    with pytest.raises(TypeError, match=r"detach_weight must be a bool"):
        VarifocalLoss(detach_weight=1)
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.jit.script(VarifocalLoss())


class _Head(torch.nn.Module):
    def __init__(self, **keywords):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 5)
        self.criterion = VarifocalLoss(reduction="sum", **keywords)

    def forward(self, x, target):
        return self.criterion(self.linear(x), target)


@pytest.mark.parametrize("detach_weight", [False, True])
def test_a_compiled_training_step_has_no_graph_break_and_matches_eager(detach_weight, device):
    import torch._dynamo

    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g).to(device)
    target = torch.where(torch.rand(32, 5, generator=g) < 0.3, torch.rand(32, 5, generator=g), 0.0).to(device)
    model = _Head(detach_weight=detach_weight).to(device)

    def step(module):
        module.zero_grad()
        loss = module(x, target)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in module.parameters()]

    eager_loss, eager_grads = step(model)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x, target)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss, grads = step(compiled)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
    for grad, eager in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 1\]"):
        compiled(x, target * 3)  # still a clear error, raised when the compiled graph runs


def test_export_runs_the_custom_operator():
    x, target = torch.randn(16, 8), torch.where(torch.rand(16, 5) < 0.3, torch.rand(16, 5), 0.0)
    model = _Head()
    exported = torch.export.export(model, (x, target))
    assert "focalbench.varifocal_loss" in str(exported.graph_module.code)
    torch.testing.assert_close(exported.module()(x, target), model(x, target), rtol=1e-6, atol=0)


def test_the_custom_operator_passes_opcheck():
    from focalbench.losses.varifocal.op import varifocal_loss as operator

    g = torch.Generator().manual_seed(3)
    for shape, reduction, detach_weight in (((6, 5), "sum", False), ((2, 4, 3), "none", True), ((7,), "mean", False)):
        logits = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_(True)
        target = torch.where(torch.rand(shape, generator=g) < 0.4, torch.rand(shape, generator=g), 0.0).double()
        alpha, gamma = torch.tensor(0.75, dtype=torch.float64), torch.tensor(1.5, dtype=torch.float64)
        torch.library.opcheck(operator, (logits, target, alpha, gamma, True, detach_weight, reduction, True))


def test_a_gradient_penalty_follows_the_definitions_second_derivative():
    """create_graph=True: the second derivative is autograd's through the definition (with the detached weight: the
    constant weight times p (1 - p), as RT-DETR's)."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    target = torch.where(torch.rand(6, 5, generator=g) < 0.4, torch.rand(6, 5, generator=g), 0.0).double()
    for detach in (False, True):

        def penalty(fn):
            x = logits.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
            return grad, torch.autograd.grad(grad.pow(2).sum(), x)[0]

        grad, second = penalty(lambda x, d=detach: varifocal_loss(x, target, gamma=1.5, detach_weight=d,
                                                                  reduction="none"))  # fmt: skip
        expected_grad, expected_second = penalty(lambda x, d=detach: _definition(x, target, gamma=1.5,
                                                                                 detach_weight=d))  # fmt: skip
        assert second.abs().max() > 1e-3
        torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(second, expected_second, rtol=1e-10, atol=1e-12)


# --- the family record and the power of its checks -------------------------------------------------------------------


def test_the_family_record():
    family = get_family(FAMILY)
    assert family.parameters == {"gamma": 2.0} and family.defaults == DEFAULTS
    assert [(s.name, s.shape) for s in family.workload.shapes] == [("rtdetr_queries", (4800, 80)),
                                                                   ("coco_rows", (65536, 80))]  # fmt: skip
    assert family.recommended == RECOMMENDED_VARIFOCAL and get_implementation(RECOMMENDED_VARIFOCAL).family == FAMILY
    assert {"varifocal_reference", "varifocal_autograd", "varifocal_fused_eager"} <= set(list_implementations(FAMILY))
    logits, target = family.workload.inputs(family.workload.shapes[0], torch.float32, "cpu", seed=3)
    positives = target[target > 0]
    assert 0.005 < positives.numel() / target.numel() < 0.015 and bool((positives <= 1).all())
    impl = get_implementation(RECOMMENDED_VARIFOCAL)
    for gamma in (2.0, 0.5):
        timed = family.workload.call(impl, logits, target, {"gamma": gamma})
        torch.testing.assert_close(timed, varifocal_loss(logits, target, gamma=gamma, reduction="sum"))
    baseline = family.workload.baseline_loss(logits, target)
    torch.testing.assert_close(baseline, F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))


def test_the_gradient_is_the_derivative_except_with_the_detached_weight():
    """The case flag and the record's say the same; the finite-difference checks take no detached case and refuse one
    given; the detached cases are judged against the reference instead."""
    family = get_family(FAMILY)
    for case in gradcheck_cases() + detached_cases():
        assert case.gradient_is_derivative == family.gradient_is_derivative(case.kwargs()) == (not case.detach_weight)
    assert all(case.gradient_is_derivative for case in gradcheck_cases())
    assert not any(case.gradient_is_derivative for case in detached_cases())
    checks = all_checks(FAMILY)
    impl = get_implementation(RECOMMENDED_VARIFOCAL)
    detached = detached_cases()[0]
    outcome = evaluate(impl, checks["varifocal_gradcheck"], detached)
    assert outcome.status == "n/a" and "not its loss's derivative" in outcome.detail  # said, never a silent pass
    # gradcheck of the detached call would fail: its gradient is not the loss's derivative
    x = detached.make()[0].double().requires_grad_(True)
    target = detached.make()[1].double()
    assert not torch.autograd.gradcheck(lambda z: varifocal_loss(z, target, **detached.kwargs()), (x,),
                                        raise_exception=False)  # fmt: skip
    assert evaluate(impl, checks["varifocal_detached_gradient"], detached).status == "pass"


@pytest.mark.parametrize(
    ("check", "mutant"),
    [
        ("varifocal_gradcheck", "weight-always-detached"),
        ("varifocal_detached_gradient", "weight-never-detached"),
        ("varifocal_negatives_are_sigmoid_focal", "alpha-complement"),
        ("varifocal_positives_are_weighted_bce", "alpha-on-positives"),
        ("varifocal_positives_are_weighted_bce", "gamma-on-positives"),
        ("varifocal_nonnegative", "bce-wrong-sign"),
        ("varifocal_reductions", "mean-over-positives"),
        ("varifocal_reductions", "mean-ultralytics"),
        ("varifocal_finite_at_extremes", "no-guard-at-the-largest-logit"),
        ("varifocal_accurate_at_extremes", "bce-monai-form"),
        ("varifocal_half_precision", "half-arithmetic"),
        ("varifocal_propagates_nan", "logits-sanitized-in-place"),
        ("varifocal_create_graph", "weight-always-detached"),
    ],
)
def test_each_family_check_can_fail(check, mutant):
    """Beyond matches_reference, which kills most mutants first: each of the family's own checks, alone, catches a bug
    it is written for."""
    catalogue = get_family(FAMILY).mutants()
    the_check = all_checks(FAMILY)[check]
    impl = as_implementation(catalogue, mutant)
    assert any(evaluate(impl, the_check, case).status == "fail" for case in the_check.cases()), (check, mutant)
    baseline = as_implementation(catalogue, None)
    assert all(evaluate(baseline, the_check, case).status in ("pass", "n/a") for case in the_check.cases())


@pytest.mark.parametrize("name", list_implementations(FAMILY))
def test_the_family_implementations_pass_its_checks_or_declare_why_not(name, device):
    """Every registered varifocal implementation (the peers with their declared defects, strict: an xpass fails)."""
    impl = get_implementation(name)
    for check in all_checks(FAMILY).values():
        for case in check.cases():
            outcome = evaluate(impl, check, case, device)
            assert outcome.status in ("pass", "xfail", "n/a"), (check.name, getattr(case, "id", case), outcome)


def test_cases_are_reproducible_from_their_seed():
    case = VarifocalCase(shape=(16, 7), targets="edge", magnitude=30.0, nan=0.1, seed=9)
    (x1, t1), (x2, t2) = case.make(), case.make()
    assert torch.equal(x1.nan_to_num(), x2.nan_to_num()) and torch.equal(t1, t2)
    assert case.id == "16x7-fp32-a0.75-g2-mean-edge-m30-nan0.1-seed9"


def test_the_mappings_hold_against_the_installed_peers():
    """The stated mappings, against the real peers where they are installed: ultralytics' VarifocalLoss on
    (batch, queries, classes) with its (gt_score, label) pair, mmdet's varifocal_loss with a weight and avg_factor."""
    from focalbench.implementations import varifocal_mmdet, varifocal_ultralytics

    if varifocal_ultralytics.UltralyticsVarifocalLoss is None or varifocal_mmdet.mmdet_varifocal_loss is None:
        pytest.skip("ultralytics or mmdet is not installed (pip install --no-deps ultralytics==8.3.253 mmdet==3.3.0)")
    g = torch.Generator().manual_seed(23)
    pred = torch.randn(2, 300, 80, generator=g, dtype=torch.float64) * 3
    label = (torch.rand(2, 300, 80, generator=g) < 0.02).double()
    gt_score = label * torch.rand(2, 300, 80, generator=g, dtype=torch.float64)
    expected = varifocal_ultralytics.UltralyticsVarifocalLoss()(pred.float(), gt_score.float(), label.float())
    target, weight = ultralytics_targets(gt_score, label)
    ours = (varifocal_loss(pred, target, reduction="none") * weight).sum() / pred.shape[1]
    torch.testing.assert_close(ours.float(), expected, rtol=1e-5, atol=0)  # ultralytics' BCE is float32
    flat_pred, flat_target = pred.reshape(-1, 80), target.reshape(-1, 80)
    anchor_weight = (torch.rand(600, 1, generator=g) < 0.9).double()
    mmdet = varifocal_mmdet.mmdet_varifocal_loss(flat_pred, flat_target, weight=anchor_weight, avg_factor=37.0)
    ours = (varifocal_loss(flat_pred, flat_target, reduction="none") * anchor_weight).sum() / (
        37.0 + torch.finfo(torch.float32).eps
    )
    torch.testing.assert_close(ours, mmdet, rtol=1e-9, atol=0)  # mmdet's BCE-with-logits in float64


def test_import_builds_nothing_and_a_call_only_what_it_uses():
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys, torch
        watched = ("focalbench.implementations", "focalbench.kernels.varifocal_eager",
                   "focalbench.kernels.varifocal_cpu", "focalbench.losses.varifocal.op", "torch._dynamo")
        def loaded():
            return sorted({w for w in watched for m in sys.modules if m == w or m.startswith(w + ".")})
        from focalbench.losses.varifocal.api import varifocal_loss
        print("import:", loaded())
        varifocal_loss(torch.randn(4, 3, requires_grad=True), torch.zeros(4, 3)).backward()
        print("first call:", loaded())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "import: []" in result.stdout
    assert "first call: ['focalbench.kernels.varifocal_cpu']" in result.stdout  # the C kernel, built at first use
