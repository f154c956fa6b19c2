"""How ``focalbench check module:fn`` reports the ways a user's own focal loss goes wrong: one line of the suite's own
each (a function of another family, a wrong returned object, a modified input), alike failures grouped, and a
correct function still passing."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import torch

import focalbench
from focalbench.arena import registry
from focalbench.arena.core import WrongOutput, all_checks, failure_of, loss_and_grad
from focalbench.arena.family import families
from focalbench.arena.registry import Implementation, get_implementation, list_implementations, load_implementation
from focalbench.cli import main

CHECKS = all_checks()
MEAN_CASE = next(c for c in CHECKS["matches_reference"].cases() if c.reduction == "mean")
NONE_CASE = next(c for c in CHECKS["matches_reference"].cases() if c.reduction == "none" and len(c.shape) > 2)
SIGMOID_NONE_CASE = next(c for c in CHECKS["sigmoid_matches_reference"].cases() if c.reduction == "none")


def softmax_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
    return focalbench.focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
                                 ignore_index=ignore_index)  # fmt: skip


def sigmoid_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="none"):
    return focalbench.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction=reduction)


def copy_of(fn: types.FunctionType, name: str | None = None) -> types.FunctionType:
    """A copy of ``fn`` (its own attributes, the same code), called ``name``."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, name or fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


@pytest.fixture
def users_module(monkeypatch):
    """``put(fn, name=None, **declarations)`` puts a copy of ``fn`` declaring ``declarations`` in a module
    ``users_check_module`` and returns its ``module:attr``."""
    module = types.ModuleType("users_check_module")
    monkeypatch.setitem(sys.modules, "users_check_module", module)

    def put(fn, name=None, **declarations):
        fn = copy_of(fn, name)
        for attribute, value in declarations.items():
            setattr(fn, attribute, value)
        setattr(module, fn.__name__, fn)
        return f"users_check_module:{fn.__name__}"

    return put


def failure(fn, case=MEAN_CASE, check="matches_reference") -> str | None:
    """What ``check`` finds wrong with ``fn`` (called as a user's function is: as it is) on ``case``."""
    impl = Implementation(name="users:fn", fn=fn, external=True, family=case.family)
    return failure_of(CHECKS[check].fn, impl, case, "cpu")


# --- 1. a function of another family: one usage error, before any check runs ---


def test_a_sigmoid_function_checked_as_softmax_is_told_to_use_its_family(users_module, capsys):
    spec = users_module(sigmoid_loss)
    assert main(["check", spec, "--family", "softmax"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"focalbench check: {spec} takes sigmoid's keywords (alpha, gamma, reduction), not softmax's: use --family "
        "sigmoid"
    )


def test_a_function_of_no_named_family_is_told_to_name_it(users_module, capsys):
    """No family is assumed: a function without focalbench_family, checked without --family, is refused before any
    check runs, naming both ways to say it."""
    spec = users_module(softmax_loss)
    assert main(["check", spec]) == 2
    assert capsys.readouterr().err.strip() == (
        f"focalbench check: implementation {spec!r} must name its loss family: give it a focalbench_family attribute "
        f"or pass the family ({', '.join(families())}; --family on the command line). Got: neither"
    )


def test_a_softmax_function_checked_as_sigmoid_is_told_to_use_its_family(users_module, capsys):
    spec = users_module(softmax_loss)
    assert main(["check", spec, "--family", "sigmoid"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"focalbench check: {spec} takes softmax's keywords (gamma, alpha, reduction, ignore_index), not sigmoid's: "
        "use --family softmax"
    )


def test_a_function_taking_kwargs_is_told_its_family_by_a_probe_call(users_module):
    def forwards(logits, target, **kwargs):
        return sigmoid_loss(logits, target, **kwargs)

    with pytest.raises(ValueError) as raised:
        load_implementation(users_module(forwards), "softmax")
    assert str(raised.value) == (
        "users_check_module:forwards takes sigmoid's keywords (alpha, gamma, reduction) and inputs, not softmax's (a "
        "call with softmax's raised TypeError: sigmoid_loss() got an unexpected keyword argument 'ignore_index'): use "
        "--family sigmoid"
    )


def test_a_function_taking_more_than_its_familys_keywords_is_told_how_to_say_which(users_module):
    def smoothed(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100, smoothing=0.0):
        return softmax_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index)

    with pytest.raises(ValueError) as raised:
        load_implementation(users_module(smoothed), "sigmoid")
    assert str(raised.value) == (
        "users_check_module:smoothed takes softmax's keywords (gamma, alpha, reduction, ignore_index), not only "
        "sigmoid's: use --family softmax (or declare focalbench_family = 'sigmoid')"
    )


def test_a_declared_family_whose_keywords_it_does_not_take_is_told_to_declare_the_other(users_module):
    with pytest.raises(ValueError) as raised:
        load_implementation(users_module(sigmoid_loss, focalbench_family="softmax"), "sigmoid")
    assert str(raised.value) == (
        "users_check_module:sigmoid_loss takes sigmoid's keywords (alpha, gamma, reduction), not softmax's: declare "
        "focalbench_family = 'sigmoid'"
    )


def test_a_function_missing_a_keyword_of_every_family_is_told_what_calls_pass(users_module):
    def no_reduction(logits, target, *, gamma=2.0, alpha=None, ignore_index=-100):
        return softmax_loss(logits, target, gamma=gamma, alpha=alpha, ignore_index=ignore_index)

    with pytest.raises(ValueError) as raised:
        load_implementation(users_module(no_reduction), "softmax")
    assert str(raised.value) == (
        "users_check_module:no_reduction must take softmax's keywords (gamma, alpha, reduction, ignore_index): every "
        "call passes them. Got a signature without reduction"
    )


def test_a_function_requiring_an_argument_no_call_passes_is_told_so(users_module):
    def weighted(logits, target, weight, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        return softmax_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, ignore_index=ignore_index)

    with pytest.raises(ValueError) as raised:
        load_implementation(users_module(weighted), "softmax")
    assert str(raised.value) == (
        "users_check_module:weighted requires weight, which no call passes (calls pass gamma, alpha, reduction, "
        "ignore_index)"
    )


def test_a_function_without_two_positional_arguments_is_told_so(users_module):
    def one_argument(logits, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        return logits.sum()

    with pytest.raises(ValueError, match=r"^users_check_module:one_argument must take the logits and the target as "
                                         r"its first two arguments$"):  # fmt: skip
        load_implementation(users_module(one_argument), "softmax")


# --- 2 and 3. the returned object, checked before anything uses it ---


def test_a_python_float_is_reported_in_the_suites_words():
    assert failure(lambda logits, target, **kw: 1.0) == "returned float, expected a torch.Tensor"


def test_a_loss_of_another_dtype_is_reported():
    def in_float64(logits, target, **kw):
        return softmax_loss(logits.double(), target, **kw)

    assert failure(in_float64) == "returned a torch.float64 loss for torch.float32 logits: expected the logits' dtype"


def test_a_loss_on_another_device_is_reported():
    def on_meta(logits, target, **kw):
        return torch.empty((), dtype=logits.dtype, device="meta")

    assert failure(on_meta) == "returned a loss on meta for logits on cpu: expected the logits' device"


def test_a_none_loss_of_the_wrong_shape_is_reported_before_the_upstream_gradient_is_built():
    def flat(logits, target, **kw):
        return softmax_loss(logits, target, **kw).reshape(-1)

    shape = (NONE_CASE.shape[0], *NONE_CASE.shape[2:])
    flat_shape = (int(torch.Size(shape).numel()),)
    assert failure(flat, NONE_CASE) == (
        f"returned a loss of shape {flat_shape} for reduction='none': expected {shape} (the target's shape)"
    )


def test_a_reduced_loss_that_is_not_0_dim_is_reported():
    def kept_dim(logits, target, **kw):
        return softmax_loss(logits, target, **kw).reshape(1)

    assert failure(kept_dim) == "returned a loss of shape (1,) for reduction='mean': expected () (a 0-dim tensor)"


def test_a_view_of_the_logits_or_the_target_is_reported():
    assert failure(lambda logits, target, **kw: logits[0, 0]) == (
        "returned a view of its logits (the loss shares their memory): expected a new tensor"
    )
    assert failure(lambda logits, target, **kw: target, SIGMOID_NONE_CASE, "sigmoid_matches_reference") == (
        "returned a view of its target (the loss shares their memory): expected a new tensor"
    )


def test_a_loss_that_does_not_require_grad_is_reported():
    def detached(logits, target, **kw):
        return softmax_loss(logits, target, **kw).detach()

    assert failure(detached) == "returned a loss that does not require grad: no gradient reaches the logits"


def test_loss_and_grad_raises_wrong_output():
    logits, target = MEAN_CASE.make()
    with pytest.raises(WrongOutput, match=r"^returned int, expected a torch.Tensor$"):
        loss_and_grad(lambda x, t, **kw: 0, logits, target, MEAN_CASE.kwargs())


# --- 4. the caller's tensors, unchanged after the call and after the backward ---


def test_a_function_that_modifies_its_target_is_reported():
    def relabels(logits, target, **kw):
        loss = softmax_loss(logits, target.clone(), **kw)
        target[0] = (target[0] + 1) % logits.shape[1]
        return loss

    assert failure(relabels) == "modified its target in place"


def test_a_function_that_modifies_its_logits_is_reported():
    def clamps(logits, target, **kw):
        loss = softmax_loss(logits, target, **kw)
        with torch.no_grad():
            logits.mul_(2)
        return loss

    assert failure(clamps) == "modified its logits in place"


def test_a_backward_that_modifies_the_target_is_reported():
    class ZeroesTargetInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits, target):
            ctx.target = target
            return logits.clone()

        @staticmethod
        def backward(ctx, grad):
            ctx.target.zero_()
            return grad, None

    def late(logits, target, **kw):
        return softmax_loss(ZeroesTargetInBackward.apply(logits, target), target.clone(), **kw)

    assert failure(late) == "modified its target in place"


def test_nan_logits_are_not_taken_for_a_modification():
    case = next(c for c in CHECKS["propagates_non_finite"].cases() if c.poison == "nan")
    assert failure(softmax_loss, case, "propagates_non_finite") is None


# --- 5. one bug, one line ---


def test_one_bug_is_one_line_with_its_count_and_first_cases(users_module, capsys):
    def returns_float(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        return 1.0

    spec = users_module(returns_float)
    assert main(["check", spec, "--family", "softmax", "--check", "matches_reference", "--check", "empty_batch"]) == 1
    out = capsys.readouterr().out
    count = len(CHECKS["matches_reference"].cases()) + len(CHECKS["empty_batch"].cases())
    first = [f"matches_reference/{c.id}" for c in CHECKS["matches_reference"].cases()[:3]]
    report = out[out.index("unexpected outcome(s)") :].splitlines()
    assert report == [
        "unexpected outcome(s) (fail, or a known defect that no longer reproduces):",
        f"  {count} cases of {spec} / every check: fail: returned float, expected a torch.Tensor (first: "
        f"{', '.join(first)}, ...)",
    ]
    assert f"\n{count} unexpected outcome(s)" in out


def test_verbose_still_prints_every_outcome(users_module, capsys):
    def returns_float(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        return 1.0

    spec = users_module(returns_float)
    assert main(["check", spec, "--family", "softmax", "--check", "empty_batch", "-v"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(f"  {spec} / empty_batch / ")]
    assert [line.split(" / ")[2] for line in lines] == [
        f"{c.id}: fail: returned float, expected a torch.Tensor" for c in CHECKS["empty_batch"].cases()
    ]


# --- a correct function still passes ---


@pytest.mark.parametrize("spec", ["focalbench:focal_loss", "users_check_module:fused"])
def test_a_correct_function_still_passes(users_module, capsys, spec):
    users_module(get_implementation("fused").fn, "fused")  # the registered one's callable, taking **kwargs: probed
    checks = ["matches_reference", "propagates_non_finite", "empty_batch", "ignored_are_inert"]
    # the product is its family's (Family.product): it needs no --family; a user's function names its family
    family = [] if spec == "focalbench:focal_loss" else ["--family", "softmax"]
    assert main(["check", spec, *family, *(a for c in checks for a in ("--check", c))]) == 0
    assert "unexpected" not in capsys.readouterr().out


def test_a_correct_sigmoid_function_still_passes_with_its_family(users_module, capsys):
    spec = users_module(sigmoid_loss)
    assert main(["check", spec, "--family", "sigmoid", "--check", "sigmoid_matches_reference"]) == 0
    assert "unexpected" not in capsys.readouterr().out


# --- 6. start-up: a user's module:attr imports the family's references, not every implementation ---

LONE_LOOKUPS = """
import json, sys
from focalbench.arena import registry
registry.get_implementation("numpy_reference"), registry.get_implementation("gather")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("focalbench.implementations."))))
"""


def test_a_lookup_imports_that_implementation_alone():
    done = subprocess.run([sys.executable, "-c", LONE_LOOKUPS], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert imported == ["focalbench.implementations.gather", "focalbench.implementations.numpy_reference"]


def test_listings_keep_the_order_of_discovery_whatever_was_looked_up_first(monkeypatch):
    """A module imported alone registers early; discovery puts the listing back in the order it registers from
    scratch (each module after the package modules it imports: gather before compiled)."""
    built_in = [name for name in list_implementations() if registry._ORIGIN[name].startswith(registry.PACKAGE)]
    monkeypatch.setattr(registry, "_REGISTRY", dict(reversed(registry._REGISTRY.items())))  # as lone lookups might
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.setattr(registry, "_ALONE", True)
    assert [name for name in list_implementations() if name in built_in] == built_in
