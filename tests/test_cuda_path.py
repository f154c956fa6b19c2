"""The CUDA path under ``torch.compile``: model + loss compiled with ``fullgraph=True``, and the Triton kernel visible
to Inductor (a ``triton_op``, traced into a ``triton_kernel_wrapper`` node, not an opaque call).

On a CPU run the kernel runs in Triton's interpreter, where ``wrap_triton`` cannot trace: the operator is then an
opaque custom op over the same body, and a fresh process without the interpreter traces the ``triton_op``'s body on
fake CUDA tensors (no GPU needed) to show what Inductor receives. With ``--device cuda`` the model is compiled by
Inductor and run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import focalbench
from focalbench.kernels import triton as triton_kernels
from focalbench.losses.quality.api import quality_focal_loss_on
from focalbench.losses.sigmoid.api import sigmoid_focal_loss_on
from focalbench.losses.softmax.api import focal_loss_on
from focalbench.losses.varifocal.api import varifocal_loss_on

pytestmark = pytest.mark.skipif(triton_kernels.UNAVAILABLE is not None, reason=str(triton_kernels.UNAVAILABLE))


def _model_and_inputs(device: str, classes: int):
    generator = torch.Generator().manual_seed(3)
    head = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, classes)).to(device)
    features = torch.randn(12, 6, generator=generator).to(device)
    return head, features


@pytest.mark.parametrize("family", ["softmax", "sigmoid", "quality", "varifocal"])
def test_a_model_and_the_cuda_path_loss_compile_with_fullgraph_and_match_eager(family: str, device: str) -> None:
    head, features = _model_and_inputs(device, classes=5)
    generator = torch.Generator().manual_seed(4)
    scores = torch.rand(12, 5, generator=generator) * (torch.rand(12, 5, generator=generator) > 0.6)  # IoU-like
    parameter = "gamma"
    if family == "softmax":
        target = torch.tensor([0, 1, 2, 3, 4, -100] * 2, device=device)
        loss_fn = focal_loss_on("cuda")
        kwargs = {"alpha": [0.1, 0.2, 0.3, 0.2, 0.2]}
    elif family == "sigmoid":
        target = (scores > 0).float().to(device)
        loss_fn = sigmoid_focal_loss_on("cuda")
        kwargs = {"reduction": "mean"}
    elif family == "quality":
        target, loss_fn, kwargs, parameter = scores.to(device), quality_focal_loss_on("cuda"), {}, "beta"
    else:
        target, loss_fn, kwargs = scores.to(device), varifocal_loss_on("cuda"), {"alpha": torch.tensor(0.75)}
    schedule = focalbench.LinearWarmupGamma(0.0, 2.0, 4)  # a schedule of beta, for the quality family

    def step(features, target):
        return loss_fn(head(features), target, **{parameter: schedule.gamma_tensor}, **kwargs)

    backend = "inductor" if device == "cuda" else "aot_eager"
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    for _ in range(3):  # a new gamma every step: a new input value, not a recompilation
        schedule.step()
        eager_loss = step(features, target)
        eager_grads = torch.autograd.grad(eager_loss, list(head.parameters()))
        compiled_loss = compiled(features, target)
        compiled_grads = torch.autograd.grad(compiled_loss, list(head.parameters()))
        torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-7)
        for got, expected in zip(compiled_grads, eager_grads, strict=True):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)


_TRACE = textwrap.dedent(
    """
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.proxy_tensor import make_fx
    from focalbench.losses.softmax import op as softmax_op
    from focalbench.losses.sigmoid import op as sigmoid_op
    from focalbench.losses.quality import op as quality_op
    from focalbench.losses.varifocal import op as varifocal_op

    from torch._library.triton import triton_ops_to_kernels

    print("TRITON_OPS", sorted(name for name in triton_ops_to_kernels if name.startswith("focalbench")))
    with FakeTensorMode(allow_non_fake_inputs=True):
        logits = torch.empty(64, 10, device="cuda")  # below autograd, as the operator body runs
        target = torch.empty(64, dtype=torch.long, device="cuda")
        weights = torch.empty(10, device="cuda")
        # on the device: a CPU scalar would be copied there, which fake CUDA tensors cannot do without a CUDA build
        gamma = torch.empty((), dtype=torch.float64, device="cuda")
        alpha = torch.empty((), dtype=torch.float64, device="cuda")
        graph = make_fx(lambda z, t, a, g: softmax_op.cuda_body(z, t, a, None, g, -100, "mean", True)[0])(
            logits, target, weights, gamma)
        print("SOFTMAX", graph.code)
        x = torch.empty(32, 80, device="cuda")
        graph = make_fx(lambda x, t, a, g: sigmoid_op.cuda_body(x, t, a, g, "sum", True)[0])(x, x, alpha, gamma)
        print("SIGMOID", graph.code)
        graph = make_fx(lambda x, t, b: quality_op.cuda_body(x, t, b, "mean", True)[0])(x, x, gamma)
        print("QUALITY", graph.code)
        graph = make_fx(lambda x, t, a, g: varifocal_op.cuda_body(x, t, a, g, True, False, "sum", True)[0])(
            x, x, alpha, gamma)
        print("VARIFOCAL", graph.code)
    """
)


def test_the_cuda_operator_is_a_triton_op_whose_kernel_inductor_sees() -> None:
    """Traced on fake CUDA tensors (a process without Triton's interpreter): the body is a few tensor operations
    around one ``triton_kernel_wrapper`` node, and nothing reads a value (a fake tensor has none: a read would
    raise)."""
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", _TRACE], capture_output=True, text=True, env=environment,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    softmax, rest = result.stdout.split("SIGMOID")
    sigmoid, rest = rest.split("QUALITY")
    quality, varifocal = rest.split("VARIFOCAL")
    for code in (softmax, sigmoid, quality, varifocal):
        assert code.count("higher_order.triton_kernel_wrapper_mutation(") == 1, code
        assert "_local_scalar_dense" not in code and "nonzero" not in code, code
    assert ("['focalbench::quality_focal_loss_cuda', 'focalbench::sigmoid_focal_loss_cuda', "
            "'focalbench::softmax_focal_loss_cuda', 'focalbench::varifocal_loss_cuda']") in result.stdout  # fmt: skip
