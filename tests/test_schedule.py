"""Gamma schedules: values per step, the criterion they drive, state_dict resume, bad arguments, and no recompilation
per gamma value under torch.compile (a real backend, AOTAutograd included) through the modules' in-place scalars and
``gamma_tensor``; with them, the rest of the same issue's module contract: torchvision's positional call, alpha kept
exact under ``.half()``, and TorchScript refused in one line."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch._dynamo
import torch._dynamo.utils

from focalbench import (
    ConstantGamma,
    CosineWarmupGamma,
    FocalLoss,
    LinearWarmupGamma,
    SigmoidFocalLoss,
    StepGamma,
    focal_loss,
    sigmoid_focal_loss,
)
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
    held = criterion.gamma  # the module's 0-dim float64 tensor: every new value is written into it
    schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=4, criterion=criterion)
    tensor = schedule.gamma_tensor
    assert criterion.gamma is held and float(held) == 0.0  # set at construction
    for _ in range(5):
        gamma = schedule.step()
        assert float(criterion.gamma) == gamma == schedule.gamma == tensor.item()
        assert criterion.gamma is held
    assert held.dim() == 0 and held.dtype == torch.float64 and repr(criterion).startswith("FocalLoss(gamma=2.0, ")
    assert schedule.gamma_tensor is tensor and tensor.dim() == 0 and tensor.dtype == torch.float64
    # the loss the criterion computes is the loss at the scheduled gamma
    logits, target = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    assert criterion(logits, target) == FocalLoss(gamma=2.0)(logits, target)


def test_a_criterion_built_on_gamma_tensor_keeps_it_when_attached():
    """``FocalLoss(gamma=schedule.gamma_tensor)`` holds that tensor; attach() no longer replaces it with a float."""
    schedule = StepGamma([1], [0.5, 1.5])
    criterion = FocalLoss(gamma=schedule.gamma_tensor)
    assert repr(criterion) == "FocalLoss(gamma=tensor(0.5), alpha=None, reduction='mean', ignore_index=-100)"
    schedule.attach(criterion).step()
    assert criterion.gamma is schedule.gamma_tensor and float(criterion.gamma) == 1.5
    criterion.gamma = 3.0  # a number set by hand: the module's own tensor, the schedule's left alone
    assert criterion.gamma is not schedule.gamma_tensor and schedule.gamma_tensor.item() == 1.5
    assert repr(criterion) == "FocalLoss(gamma=3.0, alpha=None, reduction='mean', ignore_index=-100)"
    half = SigmoidFocalLoss(alpha=torch.tensor(0.5, dtype=torch.float16), gamma=torch.tensor(1.0))
    assert repr(half) == (
        "SigmoidFocalLoss(alpha=tensor(0.5, dtype=torch.float16), gamma=tensor(1.0, dtype=torch.float32), "
        "reduction='none')"
    )


@pytest.mark.parametrize(
    ("assign", "message"),
    [
        (lambda c: setattr(c, "gamma", "2"), "gamma must be a real number >= 0. Got: str '2'"),
        (lambda c: setattr(c, "gamma", True), "gamma must be a real number >= 0. Got: bool True"),
        (lambda c: setattr(c, "gamma", torch.ones(2)),
         "gamma must be a real number >= 0 or a 0-dim floating tensor. Got: tensor of shape (2,) and dtype "
         "torch.float32"),
        (lambda c: setattr(c, "alpha", None),
         "alpha must be a real number <= 1 (a negative alpha means no weighting). Got: NoneType None"),
    ],
)  # fmt: skip
def test_assigning_a_module_scalar_checks_its_type(assign, message):
    criterion = SigmoidFocalLoss()
    with pytest.raises(TypeError) as raised:
        assign(criterion)
    assert str(raised.value) == message
    assert (float(criterion.alpha), float(criterion.gamma)) == (0.25, 2.0)  # unchanged


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


def _each_schedule_class(steps: int):
    """One factory of each schedule class, changing gamma over ``steps`` steps, for pytest.mark.parametrize."""
    return pytest.mark.parametrize(
        "make",
        [
            lambda: ConstantGamma(0.7),
            lambda: StepGamma(milestones=[steps // 10 * k for k in (1, 4, 7)], gammas=[0.0, 0.5, 1.0, 2.0]),
            lambda: LinearWarmupGamma(0.0, 2.0, warmup_steps=steps),
            lambda: CosineWarmupGamma(0.5, 3.0, warmup_steps=steps),
        ],
        ids=["constant", "step", "linear", "cosine"],
    )


@_each_schedule_class(10)
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


def _every_schedule(steps: int) -> list:
    """One schedule of each class, each taking several distinct values within ``steps`` steps."""
    return [
        ConstantGamma(1.5),
        StepGamma(milestones=[steps // 3, 2 * steps // 3], gammas=[0.0, 1.0, 2.0]),
        LinearWarmupGamma(0.0, 2.0, warmup_steps=steps),
        CosineWarmupGamma(0.5, 3.0, warmup_steps=steps),
    ]


class _CountingAotEager:
    """``backend="aot_eager"`` (AOTAutograd runs, as under inductor, and specializes what it sees), counting the
    graphs it compiles: a recompilation is one more. (A call that raises is not counted: AOTAutograd may restart a
    first analysis, ``TensorifyScalarRestartAnalysis``, and compile the same graph again.)"""

    def __init__(self):
        self.graphs = 0

    def __call__(self, graph_module, example_inputs):
        compiled = torch._dynamo.lookup_backend("aot_eager")(graph_module, example_inputs)
        self.graphs += 1
        return compiled


def _compiled_step(loss_of, backend):
    """A fullgraph-compiled training step: the loss and, computed in the compiled backward, the gradients."""
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    return torch.compile(loss_of, fullgraph=True, backend=backend)


STEPS = 30


def test_every_schedule_drives_a_compiled_model_and_focal_loss_through_one_graph():
    """The README's compiled step with a schedule attached: each schedule class, 30 steps each (the issue crashed at
    the 9th value with FailOnRecompileLimitHit under aot_eager and inductor), one graph, eager's loss and gradients."""
    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(6, 4)
    x, target = torch.randn(12, 6, generator=generator), torch.randint(0, 4, (12,), generator=generator)
    target[0] = -1
    criterion = FocalLoss(gamma=2.0, alpha=[0.25, 1.0, 0.5, 2.0], ignore_index=-1)
    backend = _CountingAotEager()
    compiled = _compiled_step(lambda x, target: criterion(model(x), target), backend)
    seen = set()
    for schedule in _every_schedule(STEPS):
        schedule.attach(criterion)
        for _ in range(STEPS):
            gamma = schedule.gamma
            seen.add(gamma)
            model.zero_grad()
            loss = compiled(x, target)
            loss.backward()
            got = [loss.detach()] + [p.grad.clone() for p in model.parameters()]
            model.zero_grad()
            eager = focal_loss(model(x), target, gamma=gamma, alpha=[0.25, 1.0, 0.5, 2.0], ignore_index=-1)
            eager.backward()
            want = [eager.detach()] + [p.grad.clone() for p in model.parameters()]
            for a, b in zip(got, want, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
            schedule.step()
    assert len(seen) > 60  # many distinct gammas, not a handful
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert (backend.graphs, graphs) == (1, 1), f"{backend.graphs} compilations for {len(seen)} gamma values"


def test_every_schedule_and_a_changing_alpha_drive_a_compiled_sigmoid_focal_loss_through_one_graph():
    """The same for ``SigmoidFocalLoss``, its float alpha changed at every step as well."""
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 3, generator=generator)
    target = (torch.rand(10, 3, generator=generator) < 0.3).double().to(logits.dtype)
    criterion = SigmoidFocalLoss(reduction="sum")
    backend = _CountingAotEager()
    compiled = _compiled_step(lambda z, t: criterion(z, t), backend)
    alphas = [0.25, 0.5, -1.0, 0.75, 0.1, 1.0]
    for index, schedule in enumerate(_every_schedule(STEPS)):
        schedule.attach(criterion)
        for step in range(STEPS):
            alpha = alphas[(index + step) % len(alphas)]
            criterion.alpha = alpha
            compiled_logits, eager_logits = logits.clone().requires_grad_(), logits.clone().requires_grad_()
            got = compiled(compiled_logits, target)
            want = sigmoid_focal_loss(eager_logits, target, alpha=alpha, gamma=schedule.gamma, reduction="sum")
            got.backward()
            want.backward()
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-9)
            torch.testing.assert_close(compiled_logits.grad, eager_logits.grad, rtol=1e-6, atol=1e-9)
            schedule.step()
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert (backend.graphs, graphs) == (1, 1), f"{backend.graphs} compilations"
    criterion.alpha = 1.5  # still checked, when the graph runs
    with pytest.raises(ValueError, match=r"alpha must be a number <= 1"):
        compiled(logits, target)


@pytest.mark.slow
@_each_schedule_class(1000)
def test_a_thousand_steps_of_a_schedule_under_inductor_compile_once(make):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    generator = torch.Generator().manual_seed(2)
    model = torch.nn.Linear(6, 4)
    x, target = torch.randn(12, 6, generator=generator), torch.randint(0, 4, (12,), generator=generator)
    criterion = FocalLoss(gamma=0.0)
    schedule = make().attach(criterion)
    compiled = _compiled_step(lambda x, target: criterion(model(x), target), "inductor")
    for _ in range(1000):
        loss = compiled(x, target)
        loss.backward()
        schedule.step()
    torch.testing.assert_close(loss, focal_loss(model(x), target, gamma=schedule.gamma_at(999)), rtol=1e-6, atol=0)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


# --- the rest of the issue: torchvision's positional call, .half(), TorchScript -------------------------------------


def test_sigmoid_focal_loss_takes_torchvisions_positional_call_and_focal_loss_stays_keyword_only():
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=generator)
    t = (torch.rand(5, 4, generator=generator) < 0.4).float()
    # torchvision.ops.sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none")
    assert torch.equal(sigmoid_focal_loss(x, t, 0.25, 2, "sum"),
                       sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0, reduction="sum"))  # fmt: skip
    assert torch.equal(sigmoid_focal_loss(x, t, -1), sigmoid_focal_loss(x, t, alpha=-1.0))
    p = torch.sigmoid(x.double())
    bce = -(t * torch.log(p) + (1 - t) * torch.log1p(-p))
    p_t = p * t + (1 - p) * (1 - t)
    expected = ((0.75 * t + 0.25 * (1 - t)) * (1 - p_t) ** 0.5 * bce).mean()  # torchvision's formula, in float64
    torch.testing.assert_close(sigmoid_focal_loss(x, t, 0.75, 0.5, "mean").double(), expected, rtol=1e-6, atol=0)
    with pytest.raises(TypeError, match="positional argument"):
        focal_loss(torch.zeros(2, 3), torch.tensor([0, 1]), 2.0)  # gamma or alpha? ambiguous: keyword-only


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_half_on_a_module_leaves_focal_loss_alpha_exact(dtype):
    weights = [0.5472, 1.0, 0.1, 2.0 / 3.0]
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(16, 4, generator=generator).to(dtype)
    target = torch.randint(0, 4, (16,), generator=generator)
    criterion = FocalLoss(alpha=weights)
    before = criterion(logits, target)
    model = torch.nn.Sequential(torch.nn.Identity(), criterion).half()  # a model's .half() reaches the loss too
    assert model[1] is criterion and criterion.alpha.dtype == torch.float64
    assert criterion.alpha.tolist() == weights  # 0.5472, not float16's 0.5470
    assert torch.equal(criterion(logits, target), before)
    assert criterion.to(torch.bfloat16).alpha.dtype == torch.float64
    assert criterion.to(torch.float32).alpha.dtype == torch.float32  # float32 and float64: as any buffer
    given = FocalLoss(alpha=torch.tensor(weights, dtype=torch.float16)).float()
    assert given.alpha.dtype == torch.float32  # a cast up is a cast, whatever the loss was given


@pytest.mark.parametrize("make", [FocalLoss, SigmoidFocalLoss], ids=["FocalLoss", "SigmoidFocalLoss"])
def test_torchscript_is_refused_in_one_line(make):
    name = make.__name__
    message = (
        f"{name} does not support TorchScript (torch.jit.script, torch.jit.trace): use torch.compile or torch.export"
    )
    with pytest.raises(RuntimeError) as raised:
        torch.jit.script(make())
    assert str(raised.value) == message
    logits = torch.zeros(2, 3)
    target = torch.tensor([0, 1]) if make is FocalLoss else torch.zeros(2, 3)
    with pytest.raises(RuntimeError) as raised:
        torch.jit.trace(make(), (logits, target))
    assert str(raised.value) == message
    function = focal_loss if make is FocalLoss else sigmoid_focal_loss
    with pytest.raises(RuntimeError) as raised:
        torch.jit.trace(lambda z, t: function(z, t), (logits, target))
    assert str(raised.value) == message.replace(name, function.__name__)
