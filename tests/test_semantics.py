"""The one semantics: messages of every rejected argument, reductions, dtypes, the all-ignored case."""

from __future__ import annotations

import math

import pytest
import torch

import focalbench
from focalbench.arena.families.softmax.cases import bad_inputs
from focalbench.losses.softmax.semantics import validate

MESSAGES = {
    "logits-int": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int64",
    "logits-list": r"logits must be a torch\.Tensor\. Got: list",
    "logits-1d": r"logits must have shape \(N, C\) or \(N, C, d1, \.\.\., dk\)\. Got: shape \(4,\)",
    "target-float": r"target must be an integer tensor of class indices\. Got: torch\.float32",
    "target-shape": r"target must have shape \(4,\) for logits of shape \(4, 3\)\. Got: shape \(5,\)",
    "target-dense-shape": r"target must have shape \(2, 4, 5\) .* Got: shape \(2, 5, 4\)",
    "target-too-large": (
        r"target values must be in \[0, 3\) or equal ignore_index \(-100\)\. Got: 1 value\(s\) outside, e\.g\. \[3\]"
    ),
    "target-negative": r"target values must be in \[0, 3\) .* e\.g\. \[-1\]",
    "gamma-negative": r"gamma must be a finite number >= 0\. Got: -0\.5",
    "gamma-nan": r"gamma must be a finite number >= 0\. Got: nan",
    "reduction-unknown": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'average'",
    "alpha-negative": r"alpha must hold finite weights >= 0\. Got: \[0\.5, -0\.1, 1\.0\]",
    "alpha-negative-scalar": r"alpha must be a finite float >= 0\. Got: -0\.25",
    "alpha-length": r"alpha must have one weight per class \(3\)\. Got: 2 weights",
    "alpha-shape": r"alpha must be 1-D with 3 per-class weights \(shape \(3,\)\)\. Got: shape \(3, 1\)",
    "ignore-index-int64": (
        r"ignore_index must be an int64, in \[-9223372036854775808, 9223372036854775807\]\. "
        r"Got: 1180591620717411303424"
    ),
    "target-device": r"target must be on the logits' device",
    "logits-one-class": r"logits must have at least 2 classes along dim 1\. Got: shape \(4, 1\)",
    "logits-complex": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.complex64",
    "target-bool": r"target must be an integer tensor of class indices\. Got: torch\.bool",
    "target-list": r"target must be a torch\.Tensor\. Got: list",
    "gamma-inf": r"gamma must be a finite number >= 0\. Got: inf",
    "gamma-str": r"gamma must be a real number >= 0\. Got: str '2'",
    "gamma-bool": r"gamma must be a real number >= 0\. Got: bool True",
    "gamma-tensor-1d": r"gamma must be a real number >= 0 or a 0-dim floating tensor\. Got: tensor of shape \(1,\)",
    "reduction-capitalized": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'Mean'",
    "reduction-none-object": r"reduction must be one of 'mean', 'sum', 'none'\. Got: None",
    "ignore-index-float": r"ignore_index must be an int\. Got: float -100\.0",
    "alpha-bool": r"alpha must be None, a float >= 0 or 3 per-class weights\. Got: bool True",
    "alpha-str": r"alpha must be None, a float >= 0 or 3 per-class weights\. Got: str",
    "alpha-inf": r"alpha must be a finite float >= 0\. Got: inf",
    "alpha-nan-weight": r"alpha must hold finite weights >= 0\. Got: \[0\.5, nan, 1\.0\]",
    "alpha-too-long": r"alpha must have one weight per class \(3\)\. Got: 4 weights",
    "alpha-complex": r"alpha must hold real numbers\. Got: tensor of dtype torch\.complex64",
}


@pytest.mark.parametrize("bad", bad_inputs(), ids=lambda b: b.name)
def test_validation_messages(bad, device):
    if bad.device == "cuda" and device != "cuda":
        pytest.skip("needs --device cuda")
    logits, target, kwargs = bad.call_args(device)
    with pytest.raises(bad.error, match=MESSAGES[bad.name]):
        validate(logits, target, **kwargs)


def test_every_bad_input_has_a_pinned_message():
    assert {b.name for b in bad_inputs()} == set(MESSAGES)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"gamma": "2"}, TypeError, r"gamma must be a real number >= 0\. Got: str '2'"),
        ({"gamma": True}, TypeError, r"gamma must be a real number"),
        ({"gamma": math.inf}, ValueError, r"gamma must be a finite number"),
        ({"alpha": "0.25"}, TypeError, r"alpha must be None, a float >= 0 or 3 per-class weights\. Got: str"),
        ({"alpha": [0.1, "x", 0.3]}, TypeError, r"alpha must be a sequence of real numbers"),
        ({"alpha": [0.1, math.nan, 0.3]}, ValueError, r"alpha must hold finite weights"),
        ({"ignore_index": 1.5}, TypeError, r"ignore_index must be an int\. Got: float 1\.5"),
        ({"ignore_index": -(2**63) - 1}, ValueError, r"ignore_index must be an int64, .* Got: -9223372036854775809"),
        ({"reduction": None}, ValueError, r"reduction must be one of"),
    ],
)
def test_more_rejections(kwargs, error, match):
    with pytest.raises(error, match=match):
        validate(torch.zeros(2, 3), torch.tensor([0, 1]), **kwargs)


@pytest.mark.parametrize("ignore_index", [-(2**63), 2**63 - 1])
def test_ignore_index_at_the_int64_bounds_is_accepted(ignore_index):
    logits = torch.randn(3, 4, requires_grad=True)
    target = torch.tensor([0, ignore_index, 3])
    loss = focalbench.focal_loss(logits, target, ignore_index=ignore_index)
    expected = focalbench.focal_loss(logits[[0, 2]], target[[0, 2]])
    assert torch.allclose(loss, expected)


def test_single_class_is_rejected():
    with pytest.raises(ValueError, match=r"logits must have at least 2 classes along dim 1\. Got: shape \(4, 1\)"):
        validate(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long))


def test_alpha_forms_normalize():
    logits, target = torch.zeros(2, 3, dtype=torch.float16), torch.tensor([0, 2])
    assert validate(logits, target).alpha is None
    assert validate(logits, target, alpha=1).alpha == 1.0
    per_class = validate(logits, target, alpha=torch.tensor([1, 2, 3])).alpha
    assert per_class.dtype == torch.float32 and per_class.tolist() == [1.0, 2.0, 3.0]
    assert validate(logits, target, alpha=(0.5, 0.25, 0.25)).alpha_kind == "per_class"


def test_integer_targets_of_any_width_are_accepted():
    args = validate(torch.zeros(2, 3), torch.tensor([0, 2], dtype=torch.int32))
    assert args.target.dtype == torch.int64


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_all_ignored_gives_zero_loss_and_zero_gradient(reduction):
    logits = torch.randn(5, 4, requires_grad=True)
    loss = focalbench.focal_loss(logits, torch.full((5,), -100), reduction=reduction)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_empty_batch():
    logits = torch.randn(0, 4, requires_grad=True)
    loss = focalbench.focal_loss(logits, torch.zeros(0, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad.shape == (0, 4)


def test_mean_divides_by_count_not_by_alpha_sum():
    logits, target = torch.zeros(2, 2, dtype=torch.float64), torch.tensor([0, 1])
    per_element = focalbench.focal_loss(logits, target, alpha=[0.25, 1.0], reduction="none")
    mean = focalbench.focal_loss(logits, target, alpha=[0.25, 1.0])
    assert mean.item() == pytest.approx(per_element.sum().item() / 2, rel=1e-15)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_result_has_logits_dtype(dtype):
    logits = torch.randn(3, 4, 2, dtype=dtype, requires_grad=True)
    loss = focalbench.focal_loss(logits, torch.randint(0, 4, (3, 2)), reduction="none")
    loss.sum().backward()
    assert loss.dtype == dtype and loss.shape == (3, 2) and logits.grad.dtype == dtype


def test_module_stores_arguments_and_calls_the_function():
    criterion = focalbench.FocalLoss(gamma=0.5, alpha=0.25, reduction="sum", ignore_index=7)
    logits, target = torch.randn(6, 8), torch.tensor([0, 7, 3, 7, 1, 2])
    expected = focalbench.focal_loss(logits, target, gamma=0.5, alpha=0.25, reduction="sum", ignore_index=7)
    assert torch.equal(criterion(logits, target), expected)
    assert "gamma=0.5" in repr(criterion)
