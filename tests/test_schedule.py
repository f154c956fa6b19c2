"""Gamma schedules: values per step, the criterion they drive, state_dict resume, bad arguments, and no recompilation
per gamma value under torch.compile through ``gamma_tensor``."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch._dynamo

from focalbench import ConstantGamma, CosineWarmupGamma, FocalLoss, LinearWarmupGamma, StepGamma
from focalbench.implementations.gather import gather_per_element


def _values(schedule, steps: int) -> list[float]:
    """gamma before the first step, then after each of ``steps`` steps."""
    return [schedule.gamma] + [schedule.step() for _ in range(steps)]


def _cosine(t: int, total: int = 4) -> float:
    return 2.0 * (1 - math.cos(math.pi * min(t, total) / total)) / 2


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (ConstantGamma(1.5), [1.5] * 7),
        (StepGamma(milestones=[2, 5], gammas=[0.0, 1.0, 2.0]), [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0]),
        (StepGamma(milestones=[1], gammas=[3.0, 0.5]), [3.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
        (LinearWarmupGamma(0.0, 2.0, warmup_steps=4), [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 2.0]),
        (LinearWarmupGamma(2.0, 1.0, warmup_steps=2), [2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0]),
        (CosineWarmupGamma(0.0, 2.0, warmup_steps=4), [_cosine(t) for t in range(7)]),
    ],
    ids=["constant", "step", "step-down", "linear", "linear-decay", "cosine"],
)
def test_values_per_step(schedule, expected):
    assert _values(schedule, 6) == pytest.approx(expected, abs=1e-15)
    assert schedule.last_step == 6


def test_cosine_is_slow_fast_slow_and_symmetric():
    gammas = _values(CosineWarmupGamma(0.0, 2.0, warmup_steps=100), 100)
    increments = [b - a for a, b in zip(gammas[:-1], gammas[1:], strict=True)]
    assert increments[0] < increments[50] and increments[-1] < increments[50]
    assert gammas[50] == pytest.approx(1.0) and gammas[25] + gammas[75] == pytest.approx(2.0)


def test_the_criterion_and_gamma_tensor_follow_every_step():
    criterion = FocalLoss(gamma=5.0)
    schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=4, criterion=criterion)
    tensor = schedule.gamma_tensor
    assert criterion.gamma == 0.0 and type(criterion.gamma) is float  # set at construction
    for _ in range(5):
        gamma = schedule.step()
        assert criterion.gamma == gamma == schedule.gamma == tensor.item()
        assert type(criterion.gamma) is float
    assert schedule.gamma_tensor is tensor and tensor.dim() == 0 and tensor.dtype == torch.float64
    # the loss the criterion computes is the loss at the scheduled gamma
    logits, target = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    assert criterion(logits, target) == FocalLoss(gamma=2.0)(logits, target)


def test_attach_detach_and_any_object_with_a_gamma():
    class Holder:
        gamma = 0.0

    holder = Holder()
    schedule = StepGamma([1], [0.5, 1.5]).attach(holder)
    assert holder.gamma == 0.5
    schedule.step()
    assert holder.gamma == 1.5
    schedule.attach(None).step()
    assert holder.gamma == 1.5 and schedule.criterion is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConstantGamma(0.7),
        lambda: StepGamma(milestones=[3, 6, 9], gammas=[0.0, 0.5, 1.0, 2.0]),
        lambda: LinearWarmupGamma(0.0, 2.0, warmup_steps=10),
        lambda: CosineWarmupGamma(0.5, 3.0, warmup_steps=10),
    ],
    ids=["constant", "step", "linear", "cosine"],
)
def test_state_dict_resumes_mid_schedule(make):
    uninterrupted = make()
    expected = _values(uninterrupted, 15)

    first = make()
    _values(first, 7)
    saved = json.loads(json.dumps(first.state_dict()))  # plain values: survives JSON (and torch.save)
    assert saved["last_step"] == 7 and saved["kind"] == first.kind

    criterion = FocalLoss(gamma=9.0)
    resumed = make().attach(criterion)
    resumed.load_state_dict(saved)
    assert resumed.last_step == 7 and criterion.gamma == expected[7] == resumed.gamma_tensor.item()
    assert [resumed.step() for _ in range(8)] == expected[8:]
    assert criterion.gamma == expected[-1]


def test_load_state_dict_restores_the_configuration():
    schedule = LinearWarmupGamma(0.0, 1.0, warmup_steps=2)
    schedule.load_state_dict(LinearWarmupGamma(1.0, 3.0, warmup_steps=8).state_dict() | {"last_step": 4})
    assert (schedule.gamma0, schedule.gamma1, schedule.warmup_steps, schedule.gamma) == (1.0, 3.0, 8, 2.0)
    assert repr(schedule) == "LinearWarmupGamma(gamma0=1.0, gamma1=3.0, warmup_steps=8, last_step=4, gamma=2.0)"


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ConstantGamma(-1.0), ValueError, "gamma must be a finite number >= 0. Got: -1.0"),
        (lambda: ConstantGamma(float("inf")), ValueError, "gamma must be a finite number >= 0. Got: inf"),
        (lambda: ConstantGamma("2"), TypeError, "gamma must be a real number >= 0. Got: str '2'"),
        (lambda: ConstantGamma(True), TypeError, "gamma must be a real number >= 0. Got: bool True"),
        (lambda: LinearWarmupGamma(-0.5, 2.0, 10), ValueError, "gamma0 must be a finite number >= 0. Got: -0.5"),
        (lambda: LinearWarmupGamma(0.0, float("nan"), 10), ValueError, "gamma1 must be a finite number >= 0. Got: nan"),
        (lambda: LinearWarmupGamma(0.0, 2.0, 0), ValueError, "warmup_steps must be an integer >= 1. Got: 0"),
        (lambda: CosineWarmupGamma(0.0, 2.0, 2.5), TypeError, "warmup_steps must be an integer >= 1. Got: float 2.5"),
        (lambda: StepGamma([2, 2], [0.0, 1.0, 2.0]), ValueError, "milestones must be strictly increasing. Got: [2, 2]"),
        (lambda: StepGamma([0], [0.0, 1.0]), ValueError, "milestones[0] must be an integer >= 1. Got: 0"),
        (lambda: StepGamma([1, 2], [0.0, 1.0]), ValueError,
         "gammas must have len(milestones) + 1 = 3 values. Got: 2"),
        (lambda: StepGamma([1], [0.0, -2.0]), ValueError, "gammas[1] must be a finite number >= 0. Got: -2.0"),
        (lambda: StepGamma(3, [0.0]), TypeError, "milestones must be a sequence of integers. Got: int"),
        (lambda: StepGamma([1], "01"), TypeError, "gammas must be a sequence of numbers. Got: str"),
        (lambda: ConstantGamma(1.0, criterion=torch.nn.CrossEntropyLoss()), TypeError,
         "criterion must be None or have a gamma attribute (e.g. FocalLoss). Got: CrossEntropyLoss"),
        (lambda: ConstantGamma(1.0).load_state_dict(StepGamma([1], [0.0, 1.0]).state_dict()), ValueError,
         "state_dict must come from a 'constant' schedule. Got: 'step'"),
        (lambda: ConstantGamma(1.0).load_state_dict({"gamma": 1.0}), TypeError,
         "state_dict must be a dict with kind, last_step and config. Got: {'gamma': 1.0}"),
        (lambda: ConstantGamma(1.0).load_state_dict({"kind": "constant", "last_step": -1, "config": {"gamma": 1.0}}),
         ValueError, "last_step must be an integer >= 0. Got: -1"),
        (lambda: ConstantGamma(1.0).load_state_dict({"kind": "constant", "last_step": 0, "config": {"g": 1.0}}),
         ValueError, "state_dict['config'] must have the keys ['gamma']. Got: {'g': 1.0}"),
        (lambda: ConstantGamma(1.0).load_state_dict({"kind": "constant", "last_step": 0, "config": {"gamma": -3}}),
         ValueError, "gamma must be a finite number >= 0. Got: -3.0"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_with_the_argument_named(make, error, message):
    with pytest.raises(error) as raised:
        make()
    assert str(raised.value) == message


def test_a_failed_load_leaves_the_schedule_as_it_was():
    criterion = FocalLoss(gamma=0.0)
    schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=4, criterion=criterion)
    schedule.step()
    bad = {"kind": "linear", "last_step": 3, "config": {"gamma0": 0.0, "gamma1": -1.0, "warmup_steps": 4}}
    with pytest.raises(ValueError, match="gamma1 must be"):
        schedule.load_state_dict(bad)
    assert (schedule.last_step, schedule.gamma1, criterion.gamma, schedule.gamma_tensor.item()) == (1, 2.0, 0.5, 0.5)


def test_gamma_tensor_changes_do_not_recompile():
    """Ten distinct gammas through ``gamma_tensor`` into a compiled focal loss: one dynamo compilation.

    The compiled function is the ``gather`` implementation's per-element focal loss (plain torch operations, gamma
    accepted as a 0-dim tensor); a counting backend records every graph dynamo hands over (a recompilation is a new
    graph). The results are compared with eager calls at each float gamma, so a graph that had baked in the first gamma
    would fail here too.
    """
    graphs = []

    def counting_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    def loss(logits, target, alpha_t, gamma):
        return gather_per_element(logits, target, alpha_t, gamma).mean()

    torch._dynamo.reset()
    compiled = torch.compile(loss, backend=counting_backend)
    generator = torch.Generator().manual_seed(0)
    logits, target = torch.randn(16, 5, generator=generator), torch.randint(0, 5, (16,), generator=generator)
    alpha_t = torch.ones(16)
    schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=9)
    seen = []
    for _ in range(10):
        seen.append(schedule.gamma)
        compiled_logits, eager_logits = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        got = compiled(compiled_logits, target, alpha_t, schedule.gamma_tensor)
        want = loss(eager_logits, target, alpha_t, schedule.gamma)
        got.backward()
        want.backward()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(compiled_logits.grad, eager_logits.grad)
        schedule.step()
    assert len(set(seen)) == 10
    assert len(graphs) == 1, f"{len(graphs)} compilations for 10 gamma values"
