"""``sigmoid_focal_loss`` and ``SigmoidFocalLoss``: RetinaNet's loss, a drop-in for torchvision's, accurate and fast.

The same defaults and meaning as ``torchvision.ops.sigmoid_focal_loss`` (the arguments:
:mod:`focalbench.losses.sigmoid.semantics`), computed in closed form (:mod:`focalbench.losses.sigmoid.closed_form`):
the C kernel on the
CPU (built at the first call; the float64 closed form in PyTorch operations where it cannot be built) and the float64
closed form on other devices; the gradient is written in the forward. While ``torch.compile`` or ``torch.export``
traces a call, the same kernels run as one custom operator (:mod:`focalbench.losses.sigmoid.op`); under
``torch.autocast`` half-precision logits are computed and returned in float32. Nothing is imported or built before
the first call.
"""

from __future__ import annotations

import torch
from torch import nn

from focalbench.kernels import choose  # imports no kernel: it does, at the first call
from focalbench.losses.common import front_door
from focalbench.losses.schedule import InPlaceScalar
from focalbench.losses.sigmoid.closed_form import CLOSED_FORM
from focalbench.losses.sigmoid.kernels import FAMILY  # declares the family's kernels
from focalbench.losses.sigmoid.semantics import DEFAULTS, validate
from focalbench.losses.softmax.api import NO_TORCHSCRIPT

__all__ = [
    "RECOMMENDED_SIGMOID",
    "SigmoidFocalLoss",
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_on",
    "sigmoid_implementation_for",
]

#: The registered implementation that mirrors what :func:`sigmoid_focal_loss` runs on the CPU
#: (``sigmoid_fused_eager`` where the C kernel is unavailable, and on other devices).
RECOMMENDED_SIGMOID = "sigmoid_fused"


def sigmoid_implementation_for(device_type: str) -> str:
    """Name of the registered implementation that computes what :func:`sigmoid_focal_loss` computes there."""
    return choose(FAMILY, device_type).implementation


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float | torch.Tensor = 0.25,
    gamma: float | torch.Tensor = 2.0,
    reduction: str = "none",
) -> torch.Tensor:
    r"""Sigmoid focal loss ``alpha_t (1 - p_t)^gamma BCE(x, t)`` per element (Lin et al., 2017; RetinaNet).

    torchvision's signature: ``sigmoid_focal_loss(x, t, 0.25, 2, "sum")`` works as there (its first two parameters
    are named ``inputs, targets``; here ``logits, target``).

    ``p = sigmoid(logits)``, ``1 - p_t = p (1 - t) + (1 - p) t``, ``alpha_t = alpha t + (1 - alpha)(1 - t)``.

    Args:
        logits: any shape, float16/bfloat16/float32/float64.
        target: the logits' shape, floating, values in ``[0, 1]`` (1 positive, 0 negative, soft targets between).
        alpha: weight of the positives (``1 - alpha`` for the negatives), ``<= 1``; negative: no weighting; a float
            or a 0-dim tensor. Default: 0.25.
        gamma: focusing parameter ``>= 0``, a float or a 0-dim tensor; 0 gives binary cross-entropy. Default: 2.0.
        reduction: ``"none"`` (the logits' shape), ``"mean"`` over every element or ``"sum"``. Default: ``"none"``.
            RetinaNet sums and divides by the number of positive anchors (averaged over the GPUs).

    Shape:
        Output: the logits' shape for ``"none"``, else a scalar; dtype of ``logits`` (float32 for half-precision
        logits under ``torch.autocast``).

    Example:
        >>> import torch
        >>> logits = torch.tensor([[3.0, -2.0], [0.5, 20.0]], requires_grad=True)
        >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = sigmoid_focal_loss(logits, target, reduction="sum")
        >>> round(loss.item(), 6)
        0.284439
        >>> loss.backward()
    """
    arguments = {"alpha": alpha, "gamma": gamma, "reduction": reduction}
    return _sigmoid_focal_loss(logits, target, arguments, None)


def _sigmoid_focal_loss(logits, target, arguments, path: str | None) -> torch.Tensor:
    if torch.jit.is_tracing():  # a trace would record the kernel's tensors as constants, or fail deep inside it
        raise RuntimeError(NO_TORCHSCRIPT.format("sigmoid_focal_loss"))
    return front_door(logits, target, arguments, family=FAMILY, path=path, validate=validate, traced=_traced,
                      closed_form=CLOSED_FORM)  # fmt: skip


def sigmoid_focal_loss_on(path: str):
    """:func:`sigmoid_focal_loss` as it runs on ``path``'s kernel (a device type) whatever device the tensors are on
    (the CUDA path on CPU tensors runs in Triton's interpreter: how the suite checks it without a GPU)."""

    def loss(logits, target, alpha=0.25, gamma=2.0, reduction="none"):
        return _sigmoid_focal_loss(logits, target, {"alpha": alpha, "gamma": gamma, "reduction": reduction}, path)

    loss.__name__ = loss.__qualname__ = f"sigmoid_focal_loss_on_{path}"
    return loss


def _traced(logits, target, *, path, alpha, gamma, reduction) -> torch.Tensor:
    """The call as ``torch.compile``/``torch.export`` trace it: value-free checks here, the rest in the operator."""
    from focalbench.losses.sigmoid.op import operator_for

    args = validate(logits, target, alpha=alpha, gamma=gamma, reduction=reduction, read_values=False)
    need_grad = torch.is_grad_enabled() and logits.requires_grad
    loss, _ = operator_for(path)(args.logits, args.target, args.alpha, args.gamma, args.reduction, need_grad)
    return loss


class SigmoidFocalLoss(nn.Module):
    """Module form of :func:`sigmoid_focal_loss`: stores the arguments (checked here) and calls it.

    ``alpha`` and ``gamma`` are held as 0-dim float64 tensors (:class:`~focalbench.losses.schedule.InPlaceScalar`):
    ``criterion.alpha = 0.5`` or ``criterion.gamma = 1.0`` (a gamma schedule) fills them in place, so a compiled
    step takes every new value through one graph; a 0-dim tensor given is held itself. TorchScript is not supported
    (``torch.jit.script``/``torch.jit.trace`` raise): use ``torch.compile`` or ``torch.export``.

    Example:
        >>> import torch
        >>> criterion = SigmoidFocalLoss(reduction="mean")
        >>> round(criterion(torch.zeros(2, 3), torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])).item(), 6)
        0.101084
        >>> criterion.alpha = -1
        >>> criterion
        SigmoidFocalLoss(alpha=-1.0, gamma=2.0, reduction='mean')
    """

    alpha = InPlaceScalar("a real number <= 1 (a negative alpha means no weighting)")
    gamma = InPlaceScalar("a real number >= 0")

    def __init__(
        self,
        alpha: float | torch.Tensor = DEFAULTS["alpha"],
        gamma: float | torch.Tensor = DEFAULTS["gamma"],
        reduction: str = DEFAULTS["reduction"],
    ):
        super().__init__()
        validate(torch.zeros(1), torch.zeros(1), alpha=alpha, gamma=gamma, reduction=reduction)
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing():
            raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))
        return sigmoid_focal_loss(logits, target, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction)

    def __prepare_scriptable__(self):  # torch.jit.script calls it first: refuse before it reads the annotations
        raise RuntimeError(NO_TORCHSCRIPT.format(type(self).__name__))

    def extra_repr(self) -> str:
        alpha, gamma = SigmoidFocalLoss.alpha.repr_of(self), SigmoidFocalLoss.gamma.repr_of(self)
        return f"alpha={alpha}, gamma={gamma}, reduction={self.reduction!r}"
