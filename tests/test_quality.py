"""The quality family (Quality Focal Loss, GFL): ``quality_focal_loss`` / ``QualityFocalLoss``, the pinned messages of
every rejected argument, mmdet's ``(label, score)`` targets and reductions on numbers, the identities (BCE at beta 0,
the sigmoid focal loss at hard targets), the gradient where ``s = y`` and at saturated logits, half precision
(mmdet#5090), ``torch.compile``/``torch.export``/opcheck, the oracle chain and the accuracy claim, and the record.

Its checks run over the registry in ``tests/test_conformance.py``, its mutants in ``tests/test_mutants.py``.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import approx_fprime

from focalbench import sigmoid_focal_loss
from focalbench.arena.accuracy import sweep as accuracy_sweep
from focalbench.arena.families.quality.cases import bad_inputs
from focalbench.arena.families.quality.oracle import quality_element, quality_numerical_gradient
from focalbench.arena.family import Family, get_family
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.implementations.quality_reference import reference_elements
from focalbench.losses.quality.api import RECOMMENDED_QUALITY, QualityFocalLoss, quality_focal_loss
from focalbench.losses.quality.semantics import DEFAULTS, label_score_targets, validate

_FLOAT_TARGET = r"target must be a floating-point tensor of scores in \[0, 1\], the logits' shape \(mmdet's \(label, "
MESSAGES = {
    "logits-int": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int64",
    "logits-list": r"logits must be a torch\.Tensor\. Got: list",
    "target-list": r"target must be a torch\.Tensor\. Got: list",
    "target-int": _FLOAT_TARGET + r"score\) form: see label_score_targets\)\. Got: torch\.int64",
    "target-labels": _FLOAT_TARGET + r"score\) form: see label_score_targets\)\. Got: torch\.int64",
    "target-bool": _FLOAT_TARGET + r"score\) form: see label_score_targets\)\. Got: torch\.bool",
    "target-shape": r"target must have the logits' shape \(4, 3\)\. Got: shape \(4, 1\)",
    "target-transposed": r"target must have the logits' shape \(4, 3\)\. Got: shape \(3, 4\)",
    "target-above-one": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[1\.5, 1\.5, 1\.5",
    "target-negative": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[-0\.75, -0\.75",
    "target-nan": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[nan, nan, nan, nan\]",
    "target-device": r"target must be on the logits' device",
    "beta-negative": r"beta must be a finite number >= 0\. Got: -0\.5",
    "beta-nan": r"beta must be a finite number >= 0\. Got: nan",
    "beta-inf": r"beta must be a finite number >= 0\. Got: inf",
    "beta-str": r"beta must be a real number >= 0\. Got: str '2'",
    "beta-bool": r"beta must be a real number >= 0\. Got: bool True",
    "beta-1d-tensor": r"beta must be a real number >= 0 or a 0-dim floating tensor\. Got: tensor of shape \(1,\)",
    "reduction-unknown": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'batchwise_mean'",
    "reduction-capitalized": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'Mean'",
    "reduction-None": r"reduction must be one of 'mean', 'sum', 'none'\. Got: None",
}


@pytest.mark.parametrize("bad", bad_inputs(), ids=lambda b: b.name)
def test_validation_messages(bad, device):
    if bad.device == "cuda" and device != "cuda":
        pytest.skip("needs --device cuda")
    logits, target, kwargs = bad.call_args(device)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        validate(logits, target, **kwargs)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        quality_focal_loss(logits, target, **kwargs)


def test_every_bad_input_has_a_pinned_message():
    assert {b.name for b in bad_inputs()} == set(MESSAGES)


def test_bad_input_is_rejected_before_any_work(monkeypatch):
    """validate raises before a kernel is chosen: no kernel runs on a bad call."""
    import focalbench.losses.common as common

    monkeypatch.setattr(common, "choose", lambda *a, **k: pytest.fail("a kernel was chosen for a bad call"))
    with pytest.raises(ValueError, match=r"beta must be a finite number >= 0"):
        validate(torch.zeros(2, 3), torch.zeros(2, 3), beta=-1.0)
    with pytest.raises(ValueError, match=r"target must not require grad"):
        validate(torch.zeros(2, 3), torch.zeros(2, 3, requires_grad=True))
    with pytest.raises(ValueError, match=r"beta must not require grad"):
        validate(torch.zeros(2, 3), torch.zeros(2, 3), beta=torch.tensor(2.0, requires_grad=True))


def test_the_defaults_have_one_home():
    """DEFAULTS (the registry's common signature) agree with validate, the function and the module: mmdet's."""
    assert DEFAULTS == {"beta": 2.0, "reduction": "mean"}
    for fn in (validate, quality_focal_loss, QualityFocalLoss.__init__):
        parameters = inspect.signature(fn).parameters
        assert {name: parameters[name].default for name in DEFAULTS} == DEFAULTS, fn


def _exact(x: float, y: float, beta: float) -> tuple[float, float]:
    return quality_element(x, y, beta)


def test_a_hand_computed_element():
    """x = 0, y = 0.8: s = 1/2, BCE = log 2, |y - s|^2 = 0.09; the gradient 0.09 (-0.3) + 2 (0.3)(-1)(1/4) log 2."""
    x = torch.tensor([[0.0]], dtype=torch.float64, requires_grad=True)
    loss = quality_focal_loss(x, torch.tensor([[0.8]], dtype=torch.float64), reduction="sum")
    loss.backward()
    assert loss.item() == pytest.approx(0.09 * math.log(2), rel=1e-14)
    assert x.grad.item() == pytest.approx(0.09 * -0.3 - 2 * 0.3 * 0.25 * math.log(2), rel=1e-14)


def _mmdet_label_score(pred: torch.Tensor, label: torch.Tensor, score: torch.Tensor, beta: float) -> torch.Tensor:
    """mmdet 3.3's ``quality_focal_loss(pred, (label, score), beta)`` as its docstring defines it, in float64: every
    class a negative with factor ``sigmoid(x)^beta``, the positive's class against its score, summed per anchor."""
    x = pred.double()
    s = torch.sigmoid(x)
    loss = F.binary_cross_entropy_with_logits(x, torch.zeros_like(x), reduction="none") * s.pow(beta)
    rows = torch.nonzero(label < pred.shape[1]).squeeze(1)
    classes = label[rows]
    positive_x, positive_y = x[rows, classes], score[rows].double()
    loss[rows, classes] = F.binary_cross_entropy_with_logits(positive_x, positive_y, reduction="none") * (
        positive_y - s[rows, classes]
    ).abs().pow(beta)
    return loss.sum(dim=1)


@pytest.fixture()
def gfl_batch():
    """Twelve anchors x five classes: four positives with IoU scores, the rest background (label 5)."""
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(12, 5, generator=g, dtype=torch.float64) * 3
    label = torch.tensor([5, 2, 5, 5, 0, 5, 4, 5, 5, 2, 5, 5])
    score = torch.where(label < 5, torch.rand(12, generator=g, dtype=torch.float64), 0.0)
    return logits, label, score


@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0])
def test_label_score_targets_give_mmdets_per_anchor_loss(gfl_batch, beta):
    logits, label, score = gfl_batch
    target = label_score_targets(label, score, 5, dtype=torch.float64)
    assert target.shape == (12, 5) and int((target > 0).sum()) == 4
    assert target[1, 2] == score[1] and target[0].sum() == 0
    per_anchor = quality_focal_loss(logits, target, beta=beta, reduction="none").sum(dim=1)
    torch.testing.assert_close(per_anchor, _mmdet_label_score(logits, label, score, beta), rtol=1e-12, atol=1e-14)


def test_the_reductions_map_onto_mmdets_per_anchor_sum_and_avg_factor(gfl_batch):
    """mmdet: per-anchor sum, then weight, then 'none' / 'sum' / 'mean' (over anchors) or sum / (avg_factor + eps)."""
    logits, label, score = gfl_batch
    target = label_score_targets(label, score, 5, dtype=torch.float64)
    mmdet_rows = _mmdet_label_score(logits, label, score, 2.0)
    total = quality_focal_loss(logits, target, reduction="sum")
    mean = quality_focal_loss(logits, target, reduction="mean")
    none = quality_focal_loss(logits, target, reduction="none")
    eps = torch.finfo(torch.float32).eps
    torch.testing.assert_close(none.sum(dim=1), mmdet_rows, rtol=1e-12, atol=0)  # mmdet 'none'
    torch.testing.assert_close(total, mmdet_rows.sum(), rtol=1e-12, atol=0)  # mmdet 'sum'
    torch.testing.assert_close(total / 12, mmdet_rows.mean(), rtol=1e-12, atol=0)  # mmdet 'mean', no avg_factor
    torch.testing.assert_close(mean * 5, mmdet_rows.mean(), rtol=1e-12, atol=0)  # = C times our 'mean'
    avg_factor = 4.0  # GFL: the number of positives
    torch.testing.assert_close(total / (avg_factor + eps), mmdet_rows.sum() / (avg_factor + eps), rtol=1e-12, atol=0)
    weight = torch.linspace(0.5, 1.5, 12, dtype=torch.float64)  # mmdet's per-anchor weight
    torch.testing.assert_close((none.sum(dim=1) * weight).sum(), (mmdet_rows * weight).sum(), rtol=1e-12, atol=0)
    assert mean.item() == pytest.approx(total.item() / 60, rel=1e-15)


def test_label_score_targets_reject_bad_arguments():
    labels, scores = torch.tensor([0, 3, 1]), torch.tensor([0.5, 0.0, 0.9])
    assert label_score_targets(labels, scores, 3).tolist() == [[0.5, 0, 0], [0, 0, 0], [0, 0.8999999761581421, 0]]
    cases = [
        ((labels.float(), scores, 3), TypeError, r"labels must be an integer tensor of class indices\. Got: torch\.f"),
        ((labels, scores.long(), 3), TypeError, r"scores must be a floating-point tensor .* Got: torch\.int64"),
        ((labels, scores, 3.0), TypeError, r"num_classes must be an int\. Got: float 3\.0"),
        ((labels, scores, 0), ValueError, r"num_classes must be at least 1\. Got: 0"),
        ((labels.view(3, 1), scores, 3), ValueError, r"labels must have shape \(N,\).* Got: shape \(3, 1\)"),
        ((labels, scores[:2], 3), ValueError, r"scores must have the labels' shape \(3,\)\. Got: shape \(2,\)"),
        ((torch.tensor([0, 4, -1]), scores, 3), ValueError, r"labels must be in \[0, 3\] \(3: background\)\. Got: 2"),
        ((labels, torch.tensor([1.5, 7.0, math.nan]), 3), ValueError,
         r"scores of positive anchors must be in \[0, 1\]\. Got: 2 value\(s\) outside, e\.g\. \[1\.5, nan\]"),
    ]  # fmt: skip
    for arguments, error, message in cases:
        with pytest.raises(error, match=message):
            label_score_targets(*arguments)


def test_beta_zero_is_bce_with_soft_targets_loss_and_gradient():
    g = torch.Generator().manual_seed(2)
    logits = (torch.randn(40, 9, generator=g) * 4).requires_grad_(True)
    target = torch.rand(40, 9, generator=g)
    loss = quality_focal_loss(logits, target, beta=0.0)
    (grad,) = torch.autograd.grad(loss, logits)
    x = logits.detach().double().requires_grad_(True)
    expected = F.binary_cross_entropy_with_logits(x, target.double())
    (expected_grad,) = torch.autograd.grad(expected, x)
    torch.testing.assert_close(loss.double(), expected, rtol=2e-6, atol=0)
    # the gradient (s - y) / N: relative to its terms s (1 - y) and (1 - s) y, within float32's rounding of them (a
    # float32 kernel forms s - y from a rounded s; where s is close to y the difference cancels, as in any float32 BCE)
    s = torch.sigmoid(x.detach())
    terms = (s * (1 - target.double()) + (1 - s) * target.double()) / target.numel()
    error = (grad.double() - expected_grad).abs()
    assert bool((error <= 2e-6 * expected_grad.abs() + 8 * 2.0**-24 * terms).all()), float((error / terms).max())


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0, 5.0])
def test_hard_targets_give_the_sigmoid_focal_loss_without_alpha(beta):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(30, 8, generator=g, dtype=torch.float64) * 6
    target = (torch.rand(30, 8, generator=g) < 0.3).double()

    def loss_and_grad(fn, **kwargs):
        x = logits.clone().requires_grad_(True)
        loss = fn(x, target, reduction="sum", **kwargs)
        return loss, torch.autograd.grad(loss, x)[0]

    ours, ours_grad = loss_and_grad(quality_focal_loss, beta=beta)
    theirs, theirs_grad = loss_and_grad(sigmoid_focal_loss, alpha=-1, gamma=beta)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("beta", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_where_s_equals_y_the_loss_is_zero_and_the_gradient_its_defined_value(beta):
    """s = y exactly (x = 0 with y = 1/2; x = +-1e4 with the target it saturates to): loss 0 (BCE for beta = 0), a
    finite gradient: 0 (the second term's defined value), and nearby the true, large derivative for beta < 1."""
    x = torch.tensor([0.0, 1e4, -1e4, 1e-6], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.5, 1.0, 0.0, 0.5], dtype=torch.float64)
    loss = quality_focal_loss(x, y, beta=beta, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    if beta:
        assert loss[:3].tolist() == [0.0, 0.0, 0.0]
    else:
        assert loss[0].item() == pytest.approx(math.log(2), rel=1e-15)
    assert grad[:3].tolist() == [0.0, 0.0, 0.0]
    exact = _exact(1e-6, 0.5, beta)[1]
    assert grad[3].item() == pytest.approx(exact, rel=1e-9)
    if 0 < beta < 1:
        assert abs(grad[3].item()) > 1e-3  # |d|^(beta - 1) s q BCE with |d| = 2.5e-7: not a vanishing term


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("magnitude", [1e4, 1e10, 1e20])
def test_saturated_logits_are_finite_and_exact(magnitude, dtype):
    x = torch.tensor([magnitude, -magnitude] * 4, dtype=dtype)
    y = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.25, 0.25, 0.9, 0.9], dtype=dtype)
    for beta in (0.0, 0.5, 2.0, 5.0):
        logits = x.clone().requires_grad_(True)
        loss = quality_focal_loss(logits, y, beta=beta, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), logits)
        assert bool(torch.isfinite(loss).all()) and bool(torch.isfinite(grad).all())
        exact = [_exact(float(a), float(b), beta) for a, b in zip(x.double(), y.double(), strict=True)]
        expected_loss = torch.tensor([e[0] for e in exact], dtype=torch.float64)
        expected_grad = torch.tensor([e[1] for e in exact], dtype=torch.float64)
        torch.testing.assert_close(loss.double(), expected_loss, rtol=ACCURACY_BOUND[dtype], atol=0)
        torch.testing.assert_close(grad.double(), expected_grad, rtol=ACCURACY_BOUND[dtype], atol=0)


def test_half_precision_is_computed_in_float32_where_mmdets_fp16_loss_exploded():
    """mmdet#5090: GFL's loss passed 1e4 under fp16 training. The witness: fp16 logits of magnitude 1e3, whose loss
    formed and summed in fp16 overflows; ours is the float32 computation, rounded once."""
    g = torch.Generator().manual_seed(9)
    logits = (torch.randn(64, 80, generator=g).sign() * 1e3).half().requires_grad_(True)
    target = torch.where(torch.rand(64, 80, generator=g) < 0.01, torch.rand(64, 80, generator=g), 0.0).half()
    fp16_arithmetic = ((target - torch.sigmoid(logits)).abs().pow(2) * F.binary_cross_entropy_with_logits(
        logits, target, reduction="none")).sum() / logits.numel()  # fmt: skip
    assert not bool(torch.isfinite(fp16_arithmetic))
    loss = quality_focal_loss(logits, target)
    assert loss.dtype == torch.float16 and bool(torch.isfinite(loss))
    expected = quality_focal_loss(logits.detach().float(), target.float())
    torch.testing.assert_close(loss.float(), expected, rtol=1e-3, atol=0)
    loss.backward()
    assert logits.grad.dtype == torch.float16 and bool(torch.isfinite(logits.grad).all())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_and_returns_float32(dtype):
    logits = torch.randn(16, 7).to(dtype).requires_grad_(True)
    target = torch.rand(16, 7).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = quality_focal_loss(logits, target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, quality_focal_loss(logits.float(), target.float()))
    loss.backward()
    assert logits.grad.dtype == dtype


def test_the_module_stores_checked_arguments_and_calls_the_function():
    criterion = QualityFocalLoss(beta=0.5, reduction="sum")
    logits, target = torch.randn(6, 4), torch.rand(6, 4)
    assert torch.equal(criterion(logits, target), quality_focal_loss(logits, target, beta=0.5, reduction="sum"))
    held = criterion.beta
    criterion.beta = 1.5
    assert criterion.beta is held and repr(criterion) == "QualityFocalLoss(beta=1.5, reduction='sum')"
    with pytest.raises(ValueError, match=r"beta must be a finite number >= 0\. Got: -1\.0"):
        QualityFocalLoss(beta=-1.0)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        QualityFocalLoss(reduction="batchwise_mean")
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.jit.script(criterion)


def test_empty_inputs_reduce_to_zero_with_an_empty_gradient():
    empty = torch.zeros(0, 80, requires_grad=True)
    loss = quality_focal_loss(empty, torch.zeros(0, 80))
    loss.backward()
    assert loss.item() == 0.0 and empty.grad.shape == (0, 80)


def test_a_compiled_training_step_has_no_graph_break_and_matches_eager():
    import torch._dynamo

    torch.manual_seed(0)
    head = torch.nn.Linear(8, 5)
    criterion = QualityFocalLoss(reduction="sum")
    x, target = torch.randn(32, 8), torch.rand(32, 5) * (torch.rand(32, 5) < 0.3)

    def step(fn):
        head.zero_grad()
        loss = fn(x, target)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in head.parameters()]

    def model(inputs, t):
        return criterion(head(inputs), t)

    eager_loss, eager_grads = step(model)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x, target)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss, grads = step(compiled)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
    for grad, eager in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager, rtol=1e-5, atol=1e-8)
    for beta in (0.5, 1.0):  # a new beta is a graph input, checked when the graph runs
        criterion.beta = beta
        torch.testing.assert_close(
            compiled(x, target), quality_focal_loss(head(x), target, beta=beta, reduction="sum"), rtol=1e-6, atol=0
        )
    with pytest.raises(ValueError, match=r"target values must be in \[0, 1\]"):
        compiled(x, target + 2)


def test_export_runs_the_custom_operator_and_opcheck_passes():
    from focalbench.losses.quality.op import quality_focal_loss as operator

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.criterion = QualityFocalLoss()

        def forward(self, logits, target):
            return self.criterion(logits, target)

    logits, target = torch.randn(6, 5), torch.rand(6, 5)
    exported = torch.export.export(Head(), (logits, target))
    assert "focalbench.quality_focal_loss" in str(exported.graph_module.code)
    torch.testing.assert_close(exported.module()(logits, target), quality_focal_loss(logits, target))
    g = torch.Generator().manual_seed(3)
    for shape, reduction, beta in (((6, 5), "sum", 2.0), ((2, 4, 3), "none", 0.5), ((7,), "mean", 0.0)):
        x = torch.randn(shape, generator=g, dtype=torch.float64).requires_grad_(True)
        t = torch.rand(shape, generator=g, dtype=torch.float64)
        torch.library.opcheck(operator, (x, t, torch.tensor(beta, dtype=torch.float64), reduction, True))


def test_a_gradient_penalty_equals_autograd_through_the_formula():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64) * 2
    target = torch.rand(6, 5, generator=g, dtype=torch.float64)

    def penalty_gradient(fn):
        x = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x, target, beta=1.5, reduction="sum"), x, create_graph=True)
        return grad, torch.autograd.grad(grad.pow(2).sum(), x)[0]

    grad, second = penalty_gradient(quality_focal_loss)
    expected_grad, expected_second = penalty_gradient(get_implementation("quality_autograd"))
    assert second.abs().max() > 1e-3
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(second, expected_second, rtol=1e-10, atol=1e-12)


def test_the_recommended_implementation_is_what_the_loss_computes():
    from focalbench.losses.quality.api import quality_implementation_for

    assert quality_implementation_for("cpu") == RECOMMENDED_QUALITY == get_family("quality").recommended
    impl = get_implementation(RECOMMENDED_QUALITY)
    assert impl.family == "quality" and impl.known_defects == () and "compile" in impl.capabilities
    logits, target = torch.randn(5, 3, dtype=torch.float64), torch.rand(5, 3, dtype=torch.float64)
    assert torch.equal(quality_focal_loss(logits, target, beta=1.0), impl(logits, target, beta=1.0))


# --- the oracle chain: mpmath (60 digits) -> quality_reference -> the implementations that claim accuracy ----------

ELEMENTS = [
    (0.3, 1.0), (0.3, 0.0), (-2.0, 0.7), (17.0, 1.0), (-17.0, 0.0), (40.0, 1.0), (-40.0, 1.0), (300.0, 0.0),
    (1e20, 1.0), (1e20, 0.0), (-1e20, 0.9), (0.7, 0.3), (-5.0, 0.999), (25.0, 1e-30), (0.0, 0.5), (3.0, 0.95),
]  # fmt: skip
BETAS = [0.0, 0.25, 0.5, 1.0, 2.0, 5.0]


def _relative(value: float, exact: float) -> float:
    return 0.0 if value == exact else abs(value - exact) / abs(exact)


@pytest.mark.parametrize("beta", BETAS)
def test_reference_matches_arbitrary_precision(beta):
    x, y = np.array([e[0] for e in ELEMENTS]), np.array([e[1] for e in ELEMENTS])
    loss, grad = reference_elements(x, y, beta)
    for i, (xi, yi) in enumerate(ELEMENTS):
        exact_loss, exact_grad = quality_element(xi, yi, beta)
        assert _relative(loss[i], exact_loss) <= 1e-13, (xi, yi, loss[i], exact_loss)
        assert _relative(grad[i], exact_grad) <= 1e-13, (xi, yi, grad[i], exact_grad)


@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize(("x", "y"), [(0.3, 1.0), (-2.0, 0.0), (3.0, 0.3), (-17.0, 0.0), (1.0, 0.9)])
def test_oracle_chain_rule_matches_numerical_differentiation(x, y, beta):
    assert _relative(quality_element(x, y, beta)[1], quality_numerical_gradient(x, y, beta)) <= 1e-12


@pytest.mark.parametrize("beta", [0.0, 0.5, 2.0, 5.0])
def test_reference_gradient_matches_finite_differences(beta):
    rng = np.random.default_rng(7)
    x, y = rng.normal(scale=2.0, size=12), rng.uniform(size=12)
    numerical = approx_fprime(x, lambda flat: reference_elements(flat, y, beta)[0].sum(), 1e-7)
    np.testing.assert_allclose(reference_elements(x, y, beta)[1], numerical, rtol=1e-5, atol=1e-6)


CLAIMING = [name for name in list_implementations(family="quality")
            if name != get_family("quality").reference and get_implementation(name).known_defects == ()]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", CLAIMING)
def test_within_the_accuracy_bound_at_every_logit(name, dtype, device):
    """Every magnitude of the sweep (0 to 1e20), both signs, targets 0, 1, 0.25 and 0.9, betas 0 to 5."""
    impl = get_implementation(name)
    if impl.supports(device=device, dtype=dtype):
        pytest.skip(impl.supports(device=device, dtype=dtype))
    rows = accuracy_sweep([impl], "quality", dtype=dtype, device=device)
    worst = max(rows, key=lambda r: max(r.max_loss_error, r.max_grad_error))
    assert max(worst.max_loss_error, worst.max_grad_error) <= ACCURACY_BOUND[dtype], worst


def test_the_sweep_exposes_the_plain_autograd_formula():
    rows = accuracy_sweep([get_implementation("quality_autograd")], "quality", values=(17.0,), betas=(2.0,))
    assert rows[0].max_loss_error == pytest.approx(1.0)  # float32 sigmoid(17) is 1: a confident positive's loss 0


# --- the record ------------------------------------------------------------------------------------------------


def test_the_record_describes_the_family():
    family = get_family("quality")
    assert family.defaults == DEFAULTS and family.reference == "quality_reference"
    assert {s.name: s.shape for s in family.workload.shapes} == {"yolo_head": (8400, 80), "coco_rows": (65536, 80)}
    if "parameters" in {f.name for f in dataclasses.fields(Family)}:
        assert dict(family.parameters) == {"beta": 2.0}
    logits, target = family.workload.inputs(family.workload.shapes[0], torch.float32, "cpu")
    positive = target > 0
    assert 0.008 < positive.float().mean().item() < 0.012
    assert bool((target[positive] <= 1).all()) and bool((target[positive] > 0).all())
    x, t = logits[:64], target[:64]
    impl = get_implementation(RECOMMENDED_QUALITY)
    torch.testing.assert_close(family.workload.call(impl, x, t, {"beta": 0.0}), family.workload.baseline_loss(x, t),
                               rtol=2e-6, atol=0)  # fmt: skip
    torch.testing.assert_close(family.workload.call(impl, x, t, {"beta": 2.0}),
                               quality_focal_loss(x, t, reduction="sum"))  # fmt: skip


def test_mmdets_fp16_explosion_is_the_peers_and_not_ours():
    """mmdet#5090 on the peer itself: its fp16 loss of large logits overflows; ours of the same inputs is finite and
    equals mmdet's own float32 result (per-anchor sums, summed)."""
    from focalbench.implementations import quality_mmdet

    if quality_mmdet.mmdet_quality_focal_loss is None:
        pytest.skip(quality_mmdet.MISSING)
    mmdet_loss = quality_mmdet.mmdet_quality_focal_loss
    g = torch.Generator().manual_seed(9)
    logits = (torch.randn(64, 80, generator=g).sign() * 1e4).half()  # a per-anchor sum of ~40 losses of 1e4
    target = torch.where(torch.rand(64, 80, generator=g) < 0.01, torch.rand(64, 80, generator=g), 0.0).half()
    assert not bool(torch.isfinite(mmdet_loss(logits, target, beta=2.0, reduction="mean")))
    ours = quality_focal_loss(logits.float(), target.float(), reduction="sum")
    assert bool(torch.isfinite(ours))
    torch.testing.assert_close(ours, mmdet_loss(logits.float(), target.float(), beta=2.0, reduction="sum"),
                               rtol=1e-6, atol=0)  # fmt: skip


@pytest.mark.parametrize("family", ["quality", "varifocal"])
def test_the_cpu_kernel_checks_the_targets_range_as_it_computes_with_the_same_error(family):
    """On the CPU the product's C kernel counts the targets outside [0, 1] in its own sweep (validation skips that
    pass): a call with one raises validation's ValueError, naming the values, and returns nothing; the same call
    validated on the host raises the same message."""
    import focalbench
    from focalbench.arena.family import get_family
    from focalbench.kernels import choose

    if not choose(family, "cpu").range_checked:
        pytest.skip(f"the {family} C kernel is unavailable here: {choose(family, 'cpu').implementation} runs")
    loss = {"quality": focalbench.quality_focal_loss, "varifocal": focalbench.varifocal_loss}[family]
    logits = torch.randn(5000, 3, requires_grad=True)  # two chunks of the kernel: the bad value in the second
    for bad in (1.5, -0.25, float("nan")):
        target = torch.rand(5000, 3) * 0.9
        target[4500, 1] = bad
        with pytest.raises(ValueError) as raised:
            loss(logits, target, reduction="sum")
        assert str(raised.value).startswith("target values must be in [0, 1]. Got: 1 value(s) outside, e.g. [")
        with pytest.raises(ValueError) as on_host:
            get_family(family).validate(logits, target)
        assert str(on_host.value) == str(raised.value)
        assert logits.grad is None
    assert torch.isfinite(loss(logits, torch.rand(5000, 3), reduction="sum"))
