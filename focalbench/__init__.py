"""focalbench: correct, stable and fast focal losses (softmax, and RetinaNet's sigmoid), and the suite that proves
which are.

Public API::

    focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)
    FocalLoss(gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)    # nn.Module
    sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="none")   # torchvision's meaning
    SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="none")                        # nn.Module
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
from focalbench.sigmoid import RECOMMENDED_SIGMOID, SigmoidFocalLoss, sigmoid_focal_loss
from focalbench.sigmoid_semantics import SigmoidArgs, class_index_targets

__version__ = "0.1.0"

__all__ = [
    "RECOMMENDED",
    "RECOMMENDED_SIGMOID",
    "ConstantGamma",
    "CosineWarmupGamma",
    "FocalArgs",
    "FocalLoss",
    "GammaSchedule",
    "Implementation",
    "KnownDefect",
    "LinearWarmupGamma",
    "SigmoidArgs",
    "SigmoidFocalLoss",
    "StepGamma",
    "class_index_targets",
    "focal_loss",
    "get_implementation",
    "list_implementations",
    "load_implementation",
    "register",
    "sigmoid_focal_loss",
    "validate",
]
