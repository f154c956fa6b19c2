"""focalbench: correct, stable and fast focal losses (softmax, and RetinaNet's sigmoid), and the suite that proves
which are.

Public API::

    focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)
    FocalLoss(gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)    # nn.Module
    sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="none")   # torchvision's signature
    SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="none")                        # nn.Module
    list_implementations(), get_implementation(name), register(...)
    ConstantGamma, StepGamma, LinearWarmupGamma, CosineWarmupGamma    # gamma schedules: .step(), .gamma_tensor
    check_values()    # context manager: the CUDA path checks target values on the host too (a sync per call)
"""

from typing import Any

from focalbench.losses.common import check_values
from focalbench.losses.schedule import ConstantGamma, CosineWarmupGamma, GammaSchedule, LinearWarmupGamma, StepGamma
from focalbench.losses.sigmoid.api import RECOMMENDED_SIGMOID, SigmoidFocalLoss, sigmoid_focal_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs, class_index_targets
from focalbench.losses.softmax.api import RECOMMENDED, FocalLoss, focal_loss
from focalbench.losses.softmax.semantics import FocalArgs, validate

#: The arena's names, imported at first use: ``import focalbench`` and a loss call import no arena module.
_LAZY = {
    name: "focalbench.arena.registry"
    for name in ("Implementation", "KnownDefect", "get_implementation", "list_implementations", "load_implementation",
                 "register")
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'focalbench' has no attribute {name!r}")


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
    "check_values",
    "class_index_targets",
    "focal_loss",
    "get_implementation",
    "list_implementations",
    "load_implementation",
    "register",
    "sigmoid_focal_loss",
    "validate",
]
