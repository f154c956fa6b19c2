"""The sigmoid family's public loss and semantics: ``sigmoid_focal_loss`` / ``SigmoidFocalLoss`` wherever
torchvision's goes (torch.compile(fullgraph=True), torch.export, autocast, the custom operator under opcheck), the
pinned messages of every rejected argument, mmdet's class-index targets, and the command line's ``--family``.

Its checks run over the registry in ``tests/test_conformance.py`` like the softmax family's.
"""

from __future__ import annotations

import inspect
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import focalbench
from focalbench import SigmoidFocalLoss, sigmoid_focal_loss
from focalbench.arena.families.sigmoid.cases import bad_inputs
from focalbench.arena.registry import get_implementation, list_implementations
from focalbench.arena.tolerances import ACCURACY_BOUND
from focalbench.cli import main
from focalbench.losses.sigmoid.semantics import DEFAULTS, class_index_targets, validate

MESSAGES = {
    "logits-int": r"logits must be float16, bfloat16, float32 or float64\. Got: torch\.int64",
    "logits-list": r"logits must be a torch\.Tensor\. Got: list",
    "target-list": r"target must be a torch\.Tensor\. Got: list",
    "target-int": (
        r"target must be a floating-point tensor of probabilities in \[0, 1\], the logits' shape \(class indices: "
        r"see class_index_targets\)\. Got: torch\.int64"
    ),
    "target-bool": r"target must be a floating-point tensor .* Got: torch\.bool",
    "target-shape": r"target must have the logits' shape \(4, 3\)\. Got: shape \(4, 1\)",
    "target-above-one": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[2\.0, 2\.0, 2\.0",
    "target-negative": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[-1\.0, -1\.0",
    "target-nan": r"target values must be in \[0, 1\]\. Got: 4 value\(s\) outside, e\.g\. \[nan, nan, nan, nan\]",
    "target-device": r"target must be on the logits' device",
    "alpha-above-one": r"alpha must be a number <= 1 \(a negative alpha means no weighting\)\. Got: 1\.5",
    "alpha-nan": r"alpha must be a number <= 1 \(a negative alpha means no weighting\)\. Got: nan",
    "alpha-str": r"alpha must be a real number <= 1 \(a negative alpha means no weighting\)\. Got: str '0\.25'",
    "gamma-negative": r"gamma must be a finite number >= 0\. Got: -0\.5",
    "gamma-nan": r"gamma must be a finite number >= 0\. Got: nan",
    "gamma-inf": r"gamma must be a finite number >= 0\. Got: inf",
    "reduction-unknown": r"reduction must be one of 'mean', 'sum', 'none'\. Got: 'batchwise_mean'",
    "target-transposed": r"target must have the logits' shape \(4, 3\)\. Got: shape \(3, 4\)",
    "alpha-bool": r"alpha must be a real number <= 1 \(a negative alpha means no weighting\)\. Got: bool True",
    "gamma-str": r"gamma must be a real number >= 0\. Got: str '2'",
    "gamma-bool": r"gamma must be a real number >= 0\. Got: bool True",
    "gamma-1d-tensor": r"gamma must be a real number >= 0 or a 0-dim floating tensor\. Got: tensor of shape \(1,\)",
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
        sigmoid_focal_loss(logits, target, **kwargs)


def test_every_bad_input_has_a_pinned_message():
    assert {b.name for b in bad_inputs()} == set(MESSAGES)


def test_the_defaults_have_one_home():
    """DEFAULTS (the registry's common signature) agree with validate, the function and the module: torchvision's."""
    assert DEFAULTS == {"alpha": 0.25, "gamma": 2.0, "reduction": "none"}
    for fn in (validate, sigmoid_focal_loss, SigmoidFocalLoss.__init__):
        parameters = inspect.signature(fn).parameters
        assert {name: parameters[name].default for name in DEFAULTS} == DEFAULTS, fn


def test_alpha_forms():
    logits, target = torch.zeros(2, 3), torch.zeros(2, 3)
    assert validate(logits, target, alpha=-1).alpha == -1.0 and not validate(logits, target, alpha=-0.5).weighted
    assert validate(logits, target, alpha=-math.inf).alpha == -1.0
    assert validate(logits, target, alpha=torch.tensor(0.5)).alpha == 0.5
    with pytest.raises(TypeError, match=r"alpha must be a real number"):
        validate(logits, target, alpha=True)
    assert validate(logits, target.double()).target.dtype == torch.float32  # the target in the compute dtype


def _torchvision(x, t, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss's formula in float64."""
    x, t = x.double(), t.double()
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    loss = ce * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    return (alpha * t + (1 - alpha) * (1 - t)) * loss if alpha >= 0 else loss


@pytest.mark.parametrize("shape", [(64, 80), (2, 80, 4, 5), (33,), ()])
def test_a_drop_in_for_torchvision_with_its_defaults(shape, device):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(shape, generator=g) * 3).to(device)
    target = (torch.rand(shape, generator=g) < 0.2).float().to(device)
    loss = sigmoid_focal_loss(logits, target)  # reduction "none", alpha 0.25, gamma 2
    assert loss.shape == logits.shape and loss.dtype == torch.float32
    expected = _torchvision(logits, target)
    torch.testing.assert_close(loss.double(), expected, rtol=ACCURACY_BOUND[torch.float32], atol=1e-12)
    soft = torch.rand(shape, generator=g).to(device)
    for alpha, gamma, reduction in ((-1.0, 0.5, "sum"), (0.75, 1.5, "mean")):
        expected = _torchvision(logits, soft, alpha, gamma)
        expected = expected.sum() if reduction == "sum" else expected.mean()
        got = sigmoid_focal_loss(logits, soft, alpha=alpha, gamma=gamma, reduction=reduction)
        torch.testing.assert_close(got.double(), expected, rtol=ACCURACY_BOUND[torch.float32], atol=1e-12)


def test_the_module_stores_checked_arguments_and_calls_the_function():
    criterion = SigmoidFocalLoss(alpha=-1, gamma=0.5, reduction="sum")
    logits, target = torch.randn(6, 4), (torch.rand(6, 4) < 0.5).float()
    assert torch.equal(criterion(logits, target), sigmoid_focal_loss(logits, target, alpha=-1, gamma=0.5,
                                                                     reduction="sum"))  # fmt: skip
    assert "gamma=0.5" in repr(criterion) and "reduction='sum'" in repr(criterion)
    with pytest.raises(ValueError, match=r"alpha must be a number <= 1"):
        SigmoidFocalLoss(alpha=2.0)
    with pytest.raises(ValueError, match=r"reduction must be one of"):
        SigmoidFocalLoss(reduction="batchwise_mean")


def test_gamma_zero_without_alpha_is_bce_and_empty_inputs_reduce_to_zero():
    logits = torch.randn(5, 3, requires_grad=True)
    target = torch.rand(5, 3)
    torch.testing.assert_close(sigmoid_focal_loss(logits, target, alpha=-1, gamma=0.0, reduction="mean"),
                               F.binary_cross_entropy_with_logits(logits, target), rtol=1e-6, atol=0)  # fmt: skip
    empty = torch.zeros(0, 80, requires_grad=True)
    loss = sigmoid_focal_loss(empty, torch.zeros(0, 80), reduction="mean")
    loss.backward()
    assert loss.item() == 0.0 and empty.grad.shape == (0, 80)


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 5)
        self.criterion = SigmoidFocalLoss(reduction="sum")

    def forward(self, x, target):
        return self.criterion(self.linear(x), target)


@pytest.fixture()
def batch(device):
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, 8, generator=g).to(device), (torch.rand(32, 5, generator=g) < 0.3).float().to(device)


def test_a_compiled_training_step_has_no_graph_break_and_matches_eager(batch, device):
    import torch._dynamo

    x, target = batch
    model = _Head().to(device)

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
        compiled(x, target * 2)  # still a clear error, raised when the compiled graph runs


def test_new_alpha_and_gamma_values_are_graph_inputs_under_compile(batch, device):
    """A module's alpha and gamma changed between compiled calls: symbolic after the first change (one recompilation),
    checked when the graph runs, never a crash or a stale value."""
    _, target = batch
    x = torch.randn(target.shape, device=device)
    criterion = SigmoidFocalLoss(reduction="sum")
    compiled = torch.compile(lambda z, t: criterion(z, t), fullgraph=True, backend="aot_eager")
    for alpha, gamma in ((0.25, 2.0), (0.5, 2.0), (0.75, 1.0), (-1.0, 0.5)):
        criterion.alpha, criterion.gamma = alpha, gamma
        expected = sigmoid_focal_loss(x, target, alpha=alpha, gamma=gamma, reduction="sum")
        torch.testing.assert_close(compiled(x, target), expected, rtol=1e-6, atol=0)
    criterion.alpha = 1.5
    with pytest.raises(ValueError, match=r"alpha must be a number <= 1"):
        compiled(x, target)


def test_a_gamma_tensor_does_not_recompile(batch, device):
    import torch._dynamo.testing

    _, target = batch
    counter = torch._dynamo.testing.CompileCounter()
    gamma = torch.tensor(0.0, dtype=torch.float64)
    logits = torch.randn(32, 5, device=device)
    compiled = torch.compile(lambda z, t, g: sigmoid_focal_loss(z, t, gamma=g, reduction="mean"), backend=counter,
                             fullgraph=True)  # fmt: skip
    for value in (0.0, 0.5, 2.0, 3.5):
        gamma.fill_(value)
        torch.testing.assert_close(compiled(logits, target, gamma),
                                   sigmoid_focal_loss(logits, target, gamma=value, reduction="mean"))  # fmt: skip
    assert counter.frame_count == 1


def test_export_runs_the_custom_operator(batch, device):
    x, target = batch
    model = _Head().to(device)
    exported = torch.export.export(model, (x, target))
    assert "focalbench.sigmoid_focal_loss" in str(exported.graph_module.code)
    torch.testing.assert_close(exported.module()(x, target), model(x, target), rtol=1e-6, atol=0)


def test_the_custom_operator_passes_opcheck(device):
    from focalbench.losses.sigmoid.op import sigmoid_focal_loss as operator

    g = torch.Generator().manual_seed(3)
    gamma = torch.tensor(2.0, dtype=torch.float64)
    for shape, reduction, alpha in (((6, 5), "sum", 0.25), ((2, 4, 3, 2), "none", -1.0), ((7,), "mean", 0.5)):
        logits = torch.randn(shape, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
        target = torch.rand(shape, generator=g, dtype=torch.float64).to(device)
        alpha = torch.tensor(alpha, dtype=torch.float64)
        torch.library.opcheck(operator, (logits, target, alpha, gamma, reduction, True))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_and_returns_float32(dtype):
    logits = torch.randn(16, 7).to(dtype).requires_grad_(True)
    target = (torch.rand(16, 7) < 0.5).to(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sigmoid_focal_loss(logits, target, reduction="mean")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, sigmoid_focal_loss(logits.float(), target.float(), reduction="mean"))
    loss.backward()
    assert logits.grad.dtype == dtype
    assert sigmoid_focal_loss(logits, target).dtype == dtype  # outside autocast: the logits' dtype


def test_import_builds_nothing_and_a_call_only_what_it_uses():
    code = textwrap.dedent(
        """
        import sys, torch
        watched = ("focalbench.implementations", "focalbench.kernels.sigmoid_cpu", "focalbench.kernels.sigmoid_eager",
                   "focalbench.kernels.sigmoid_triton", "focalbench.losses.sigmoid.op", "triton", "torch._dynamo")
        def loaded():
            return sorted({w for w in watched for m in sys.modules if m == w or m.startswith(w + ".")})
        import focalbench
        print("import:", loaded())
        focalbench.sigmoid_focal_loss(torch.randn(4, 3, requires_grad=True), torch.ones(4, 3)).sum().backward()
        print("first call:", loaded())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "import: []" in result.stdout
    assert "first call: ['focalbench.kernels.sigmoid_cpu']" in result.stdout


def test_the_recommended_implementation_is_what_the_loss_computes():
    from focalbench.losses.sigmoid.api import sigmoid_implementation_for

    assert sigmoid_implementation_for("cpu") == focalbench.RECOMMENDED_SIGMOID
    impl = get_implementation(focalbench.RECOMMENDED_SIGMOID)
    assert impl.family == "sigmoid" and impl.known_defects == () and "compile" in impl.capabilities
    logits, target = torch.randn(5, 3, dtype=torch.float64), torch.rand(5, 3, dtype=torch.float64)
    assert torch.equal(sigmoid_focal_loss(logits, target, gamma=1.0), impl(logits, target, gamma=1.0))


@pytest.mark.parametrize("context", ["no_grad", "inference_mode", "logits_without_grad"])
@pytest.mark.parametrize("name", list_implementations(family="sigmoid"))
def test_no_gradient_is_computed_when_none_is_needed(name, context, monkeypatch, device):
    import focalbench.losses.common as wiring

    impl = get_implementation(name)
    if impl.supports(device=device) or impl.compiles:
        pytest.skip(impl.supports(device=device) or f"{name} compiles its own autograd graph")
    calls: list[bool] = []
    apply = wiring.FusedLoss.apply

    def spy(logits, args, kernel, closed_form, need_grad):
        calls.append(need_grad)
        return apply(logits, args, kernel, closed_form, need_grad)

    monkeypatch.setattr(wiring.FusedLoss, "apply", spy)
    logits, target = torch.randn(6, 5, device=device), torch.rand(6, 5, device=device)
    impl(logits.clone().requires_grad_(True), target, reduction="sum")
    if not calls:
        pytest.skip(f"{name} does not use the closed-form wiring")
    manager = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}.get(context, torch.enable_grad)
    with manager():
        loss = impl(logits.requires_grad_(context != "logits_without_grad"), target, reduction="sum")
    assert calls == [True, False] and not loss.requires_grad


def test_a_gradient_penalty_equals_autograd_through_log_space(device):
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(6, 5, generator=g, dtype=torch.float64) * 2).to(device)
    target = torch.rand(6, 5, generator=g, dtype=torch.float64).to(device)

    def penalty_gradient(fn):
        x = logits.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(x, target, gamma=1.5, reduction="sum"), x, create_graph=True)
        return grad, torch.autograd.grad(grad.pow(2).sum(), x)[0]

    grad, second = penalty_gradient(sigmoid_focal_loss)
    expected_grad, expected_second = penalty_gradient(get_implementation("sigmoid_logspace"))
    assert second.abs().max() > 1e-3
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(second, expected_second, rtol=1e-10, atol=1e-12)


def test_class_index_targets_follow_mmdet():
    """Labels in [0, C] (C: background) and an ignore value become one-hot targets and a weight; the mmdet pattern
    (weight times the per-element loss, summed, divided by avg_factor) is then one line."""
    labels = torch.tensor([[0, 3], [2, -1]])  # (N, d1): class 0, background (C = 3), class 2, ignored
    target, weight = class_index_targets(labels, 3, ignore_index=-1)
    assert target.shape == (2, 3, 2) and weight.shape == (2, 1, 2)
    assert target[:, :, 0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]] and target[:, :, 1].sum() == 0
    assert weight.flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    logits = torch.randn(2, 3, 2)
    logits[1, :, 1] = math.nan  # garbage at the ignored position stays there (NaN * 0 is NaN: index it out)
    loss = sigmoid_focal_loss(logits, target, reduction="none")
    assert bool(loss[1, :, 1].isnan().all()) and bool(torch.isfinite(loss[:, :, 0]).all())
    assert bool(torch.isfinite(loss[0, :, 1]).all())
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\] \(3: background\) or equal ignore_index \(-1\)"):
        class_index_targets(torch.tensor([4]), 3, ignore_index=-1)
    with pytest.raises(TypeError, match=r"labels must be an integer tensor of class indices\. Got: torch\.float32"):
        class_index_targets(torch.tensor([0.0]), 3)


def test_list_and_check_take_a_family(capsys):
    assert main(["list", "--family", "sigmoid"]) == 0
    out = capsys.readouterr().out
    assert "sigmoid_fused " in out and "gather" not in out
    assert main(["check", "--family", "sigmoid", "sigmoid_fused", "sigmoid_torchvision", "--check",
                 "sigmoid_empty_batch", "--check", "sigmoid_accurate_at_extremes"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "xfail" in out and "unexpected" not in out
    assert main(["check", "gather", "--check", "sigmoid_empty_batch"]) == 2
    assert "--check must name checks of the implementations' family" in capsys.readouterr().err


def test_a_sigmoid_run_is_timed_against_bce_with_logits():
    from focalbench.arena.family import Shape
    from focalbench.bench.runner import run_case

    impl = get_implementation("sigmoid_fused")
    rows = run_case([impl, get_implementation("gather")], Shape("tiny", (256, 7), "a test"), torch.float32,
                    "forward+backward", {"gamma": 2.0}, "cpu", rounds=2, sample_s=0.001, bandwidth_gbps=None,
                    family="sigmoid")  # fmt: skip
    assert [r["implementation"] for r in rows] == ["bce_with_logits", "sigmoid_fused"]  # gather: another family
    assert {r["baseline"] for r in rows} == {"bce_with_logits"}
    assert rows[1]["bytes_moved"] == 3 * 256 * 7 * 4  # logits and float targets read, gradient written


def test_an_implementation_that_raises_on_the_inputs_is_not_timed_and_the_run_goes_on(capsys):
    """A peer that fails on a workload's inputs (mmdet's DFL at y = n - 1 raised an IndexError) costs its own row,
    named on stderr, not the report; the baseline's failure is the run's."""
    import dataclasses

    from focalbench.arena.family import Shape
    from focalbench.bench.runner import run_case

    def broken(logits, target, **arguments):
        raise IndexError("Target 7 is out of bounds.")

    impl = get_implementation("sigmoid_fused")
    failing = dataclasses.replace(impl, name="sigmoid_broken", fn=broken)
    rows = run_case([failing, impl], Shape("tiny", (256, 7), "a test"), torch.float32, "forward+backward",
                    {"gamma": 2.0}, "cpu", rounds=2, sample_s=0.001, bandwidth_gbps=None, family="sigmoid")  # fmt: skip
    assert [r["implementation"] for r in rows] == ["bce_with_logits", "sigmoid_fused"]
    assert "sigmoid_broken raised IndexError at tiny (Target 7 is out of bounds.): not timed" in capsys.readouterr().err


def test_run_and_accuracy_pick_the_family_of_the_named_implementations(monkeypatch, capsys, tmp_path):
    import focalbench.arena.accuracy
    import focalbench.bench.runner
    import focalbench.bench.timing

    seen = []
    monkeypatch.setattr(focalbench.bench.timing, "copy_bandwidth", lambda device: 1.0)
    monkeypatch.setattr(focalbench.bench.runner, "run_case", lambda *args, family, **kw: seen.append(family) or [])
    assert main(["run", "--impl", "sigmoid_fused", "--shape", "retinanet_rows", "--mode", "forward", "--rounds", "1",
                 "--skip-checks", "--output", str(tmp_path)]) == 0  # fmt: skip
    assert seen == ["sigmoid"]
    assert main(["run", "--impl", "sigmoid_fused", "--impl", "gather", "--skip-checks", "--output", str(tmp_path)]) == 2
    assert "--impl must name implementations of one family (softmax). Got: sigmoid_fused of" in capsys.readouterr().err
    monkeypatch.setattr(focalbench.arena.accuracy, "sweep", lambda impls, family, **kw: seen.append(len(impls)) or [])
    assert main(["accuracy", "--family", "sigmoid", "--impl", "sigmoid_fused", "--output", str(tmp_path)]) == 0
    assert seen == ["sigmoid", 1]


def test_a_users_sigmoid_loss_declares_its_family(monkeypatch):
    """A user's module:attr that declares focalbench_family = "sigmoid" is judged by the sigmoid checks."""
    import types

    from focalbench.arena.core import all_checks, evaluate

    CHECKS = all_checks()
    from focalbench.arena.registry import load_implementation

    def bce(logits, target, *, alpha=0.25, gamma=2.0, reduction="none"):
        return F.binary_cross_entropy_with_logits(logits, target, reduction=reduction)

    bce.focalbench_family = "sigmoid"
    module = types.ModuleType("users_sigmoid_losses")
    module.bce = bce
    monkeypatch.setitem(sys.modules, "users_sigmoid_losses", module)
    impl = load_implementation("users_sigmoid_losses:bce")
    assert impl.family == "sigmoid" and impl.external and "any_shape" in impl.capabilities
    check = CHECKS["sigmoid_bce_at_gamma_zero"]
    assert evaluate(impl, check, check.cases()[0]).status == "pass"
    assert evaluate(impl, CHECKS["sigmoid_matches_reference"], CHECKS["sigmoid_matches_reference"].cases()[0]).status \
        == "fail"  # BCE is not a focal loss
    assert evaluate(impl, CHECKS["empty_batch"], CHECKS["empty_batch"].cases()[0]).status == "n/a"  # another family
