"""focalbench: correct, stable and fast softmax focal losses, and the suite that proves which are.

Public API::

    focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)
    FocalLoss(gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)    # nn.Module
    list_implementations(), get_implementation(name), register(...)
    ConstantGamma, StepGamma, LinearWarmupGamma, CosineWarmupGamma    # gamma schedules: .step(), .gamma_tensor
"""

from focalbench.loss import RECOMMENDED, FocalLoss, focal_loss
from focalbench.registry import (
    Implementation,
    KnownDefect,
    get_implementation,
    list_implementations,
    load_implementation,
    register,
)
from focalbench.schedule import ConstantGamma, CosineWarmupGamma, GammaSchedule, LinearWarmupGamma, StepGamma
from focalbench.semantics import FocalArgs, validate

__version__ = "0.1.0"

__all__ = [
    "RECOMMENDED",
    "ConstantGamma",
    "CosineWarmupGamma",
    "FocalArgs",
    "FocalLoss",
    "GammaSchedule",
    "Implementation",
    "KnownDefect",
    "LinearWarmupGamma",
    "StepGamma",
    "focal_loss",
    "get_implementation",
    "list_implementations",
    "load_implementation",
    "register",
    "validate",
]
