"""``focal_loss`` / ``FocalLoss`` wherever ``F.cross_entropy`` goes: torch.compile(fullgraph=True), torch.export,
autocast, state_dict, the custom operator itself (``torch.library.opcheck``), and an import that builds nothing.

Compilation is expensive here (seconds per graph), so the compiled cases are few and share one compiled step.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import focalbench
from focalbench import FocalLoss, focal_loss


class _Model(torch.nn.Module):
    def __init__(self, classes: int = 5, alpha=None):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, classes)
        self.criterion = FocalLoss(gamma=2.0, alpha=alpha, ignore_index=-1)

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.criterion(self.linear(x), target)


def _step(model, x, target):
    model.zero_grad()
    loss = model(x, target)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.fixture()
def batch(device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 8, generator=g)
    target = torch.randint(0, 5, (32,), generator=g)
    target[:4] = -1
    return x.to(device), target.to(device)


def test_a_compiled_training_step_has_no_graph_break_and_matches_eager(batch, device):
    import torch._dynamo

    x, target = batch
    model = _Model(alpha=[0.5, 1.0, 1.0, 2.0, 1.0]).to(device)
    eager_loss, eager_grads = _step(model, x, target)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model)(x, target)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, fullgraph=True)
    loss, grads = _step(compiled, x, target)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
    for grad, eager in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, eager, rtol=1e-5, atol=1e-8)
    # a bad target is still a clear ValueError, raised when the compiled graph runs
    with pytest.raises(ValueError, match=r"target values must be in \[0, 5\) or equal ignore_index \(-1\)"):
        compiled(x, torch.full_like(target, 7))


def test_a_gamma_tensor_does_not_recompile(batch, device):
    """A schedule's gamma_tensor is an input of the compiled graph, not a constant: 5 gammas, one graph."""
    import torch._dynamo.testing

    x, target = batch
    counter = torch._dynamo.testing.CompileCounter()
    gamma = torch.tensor(0.0, dtype=torch.float64)
    logits = torch.randn(32, 5, device=device)
    compiled = torch.compile(lambda z, t, g: focal_loss(z, t, gamma=g, ignore_index=-1), backend=counter,
                             fullgraph=True)  # fmt: skip
    for value in (0.0, 0.5, 1.0, 2.0, 3.5):
        gamma.fill_(value)
        torch.testing.assert_close(compiled(logits, target, gamma), focal_loss(logits, target, gamma=value,
                                                                               ignore_index=-1))  # fmt: skip
    assert counter.frame_count == 1


def test_export_runs_the_custom_operator(batch, device):
    x, target = batch
    model = _Model(alpha=[0.5, 1.0, 1.0, 2.0, 1.0]).to(device)
    exported = torch.export.export(model, (x, target))
    assert "focalbench.softmax_focal_loss" in str(exported.graph_module.code)
    torch.testing.assert_close(exported.module()(x, target), model(x, target), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_computes_and_returns_float32_like_cross_entropy(dtype):
    logits = torch.randn(16, 7).to(dtype).requires_grad_(True)
    target = torch.randint(0, 7, (16,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = focal_loss(logits, target, gamma=0.0)
        reference = F.cross_entropy(logits, target)
    assert loss.dtype == reference.dtype == torch.float32
    torch.testing.assert_close(loss, F.cross_entropy(logits.float(), target), rtol=1e-6, atol=0)
    loss.backward()
    assert logits.grad.dtype == dtype
    assert focal_loss(logits, target).dtype == dtype  # outside autocast: the logits' dtype


def test_alpha_is_a_buffer_that_round_trips():
    criterion = FocalLoss(gamma=1.0, alpha=[0.25, 0.5, 1.0])
    assert [name for name, _ in criterion.named_buffers()] == ["alpha"]
    state = criterion.state_dict()
    torch.testing.assert_close(state["alpha"], torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64))
    other = FocalLoss(gamma=1.0, alpha=[1.0, 1.0, 1.0])
    other.load_state_dict(state)
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    torch.testing.assert_close(other(logits, target), criterion(logits, target))
    assert criterion.to(torch.float32).alpha.dtype == torch.float32  # moved (and cast) by .to() like any buffer
    assert FocalLoss(alpha=0.25).state_dict()["alpha"].dim() == 0
    plain = FocalLoss()
    assert plain.state_dict() == {}
    loaded = FocalLoss().load_state_dict(plain.state_dict())
    assert not loaded.missing_keys and not loaded.unexpected_keys
    with pytest.raises(ValueError, match="alpha must hold finite weights >= 0"):
        FocalLoss(alpha=[1.0, -1.0])


def test_the_custom_operator_passes_opcheck(device):
    from focalbench.losses.softmax.op import softmax_focal_loss

    g = torch.Generator().manual_seed(3)
    gamma = torch.tensor(2.0, dtype=torch.float64)
    for shape, reduction, alpha in (((6, 5), "mean", None), ((2, 4, 3, 2), "none", torch.rand(4, generator=g)),
                                    ((6, 5), "sum", None)):  # fmt: skip
        logits = torch.randn(shape, generator=g, dtype=torch.float64).to(device).requires_grad_(True)
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g).to(device)
        alpha = None if alpha is None else alpha.to(device)
        args = (logits, target, alpha, 0.5 if alpha is None else None, gamma, -100, reduction, True)
        torch.library.opcheck(softmax_focal_loss, args)


def test_import_builds_and_imports_nothing_and_a_call_only_what_it_uses():
    code = textwrap.dedent(
        """
        import sys, torch
        watched = ("focalbench.implementations", "focalbench.kernels.cpu", "focalbench.kernels.eager",
                   "focalbench.kernels.triton", "focalbench.losses.softmax.op", "triton", "torch._dynamo")
        def loaded():
            return sorted({w for w in watched for m in sys.modules if m == w or m.startswith(w + ".")})
        import focalbench
        print("import:", loaded())
        focalbench.focal_loss(torch.randn(4, 3, requires_grad=True), torch.tensor([0, 1, 2, 0])).backward()
        print("first call:", loaded())
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "import: []" in result.stdout
    assert "first call: ['focalbench.kernels.cpu']" in result.stdout


def test_focal_loss_and_cross_entropy_agree_at_gamma_zero_through_the_module(batch, device):
    x, target = batch
    logits = torch.nn.Linear(8, 5).to(device)(x)
    torch.testing.assert_close(FocalLoss(gamma=0.0, ignore_index=-1)(logits, target),
                               F.cross_entropy(logits, target, ignore_index=-1), rtol=1e-6, atol=0)  # fmt: skip
    assert focalbench.RECOMMENDED in focalbench.list_implementations()


def test_a_changing_float_gamma_under_fullgraph_is_a_graph_input_after_the_first_value(device):
    """A schedule that sets criterion.gamma to floats: no crash, eager values, and at most one recompilation (torch
    makes a changing float dynamic after its second value); a bad value is the eager ValueError when the graph runs."""
    import torch._dynamo.testing

    logits, target = torch.randn(16, 5, device=device), torch.randint(0, 5, (16,), device=device)
    criterion = FocalLoss(gamma=0.0)
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(lambda z, t: criterion(z, t), backend=counter, fullgraph=True)
    for gamma in (0.0, 0.5, 1.0, 2.0, 3.5):
        criterion.gamma = gamma
        torch.testing.assert_close(compiled(logits, target), focal_loss(logits, target, gamma=gamma))
    assert counter.frame_count <= 2
    criterion.gamma = -1.0
    with pytest.raises(ValueError, match=r"gamma must be a finite number >= 0. Got: -1.0"):
        compiled(logits, target)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"gamma": -1}, ValueError, "gamma must be a finite number >= 0. Got: -1.0"),
        ({"reduction": "avg"}, ValueError, "reduction must be one of 'mean', 'sum', 'none'. Got: 'avg'"),
        ({"ignore_index": 2.5}, TypeError, "ignore_index must be an int. Got: float 2.5"),
        ({"alpha": torch.ones(3, requires_grad=True)}, ValueError, "alpha must not require grad"),
        ({"alpha": "balanced"}, TypeError, "alpha must be None, a float >= 0 or per-class weights"),
    ],
)
def test_focal_loss_module_checks_its_arguments_when_built(kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        FocalLoss(**kwargs)


def test_weights_that_require_grad_are_refused_and_numpy_weights_accepted():
    import numpy as np

    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ValueError, match="gamma must not require grad"):
        focal_loss(logits, target, gamma=torch.tensor(2.0, requires_grad=True))
    with pytest.raises(ValueError, match="alpha must not require grad"):
        focal_loss(logits, target, alpha=torch.ones(3, requires_grad=True))
    weights = np.array([0.5, 1.0, 2.0])
    expected = focal_loss(logits, target, alpha=weights.tolist())
    torch.testing.assert_close(focal_loss(logits, target, alpha=weights), expected)
