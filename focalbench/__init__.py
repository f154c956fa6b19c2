"""focalbench: correct, stable and fast focal losses (softmax; RetinaNet's sigmoid; the Quality Focal, Varifocal and
Distribution Focal losses of modern detectors), and the suite that proves which are.

Public API::

    focal_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)
    FocalLoss(gamma=2.0, alpha=None, reduction="mean", ignore_index=-100)    # nn.Module
    sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction="none")   # torchvision's signature
    SigmoidFocalLoss(alpha=0.25, gamma=2.0, reduction="none")                        # nn.Module
    quality_focal_loss(logits, target, *, beta=2.0, reduction="mean")        # GFL's QFL, soft IoU targets
    QualityFocalLoss(beta=2.0, reduction="mean")                               # nn.Module
    varifocal_loss(logits, target, *, alpha=0.75, gamma=2.0, iou_weighted=True, detach_weight=False, reduction="mean")
    VarifocalLoss(alpha=0.75, gamma=2.0, iou_weighted=True, detach_weight=False, reduction="mean")   # nn.Module
    distribution_focal_loss(logits, target, *, reduction="mean")   # GFL's DFL: logits (..., n) bins, target in [0, n-1]
    DistributionFocalLoss(reduction="mean")                        # nn.Module
    fused_linear_focal_loss(hidden, weight, target, bias=None, *, gamma=2.0, alpha=None, reduction="mean",
                            ignore_index=-100, chunk_size=None)   # focal_loss(hidden @ weight.T + bias) in chunks
    FusedLinearFocalLoss(gamma=2.0, alpha=None, reduction="mean", ignore_index=-100, chunk_size=None)  # nn.Module
    label_score_targets(labels, scores, num_classes), ultralytics_targets(gt_score, label)   # the peers' target forms
    list_implementations(), get_implementation(name), register(...)
    ConstantGamma, StepGamma, LinearWarmupGamma, CosineWarmupGamma    # gamma schedules: .step(), .gamma_tensor
    check_values()    # context manager: the CUDA path checks target values on the host too (a sync per call)
"""

from typing import Any

from focalbench.losses.common import check_values
from focalbench.losses.dfl.api import RECOMMENDED_DFL, DistributionFocalLoss, distribution_focal_loss
from focalbench.losses.dfl.semantics import DflArgs
from focalbench.losses.linear.api import RECOMMENDED_LINEAR, FusedLinearFocalLoss, fused_linear_focal_loss
from focalbench.losses.linear.semantics import LinearArgs
from focalbench.losses.quality.api import RECOMMENDED_QUALITY, QualityFocalLoss, quality_focal_loss
from focalbench.losses.quality.semantics import QualityArgs, label_score_targets
from focalbench.losses.schedule import ConstantGamma, CosineWarmupGamma, GammaSchedule, LinearWarmupGamma, StepGamma
from focalbench.losses.sigmoid.api import RECOMMENDED_SIGMOID, SigmoidFocalLoss, sigmoid_focal_loss
from focalbench.losses.sigmoid.semantics import SigmoidArgs, class_index_targets
from focalbench.losses.softmax.api import RECOMMENDED, FocalLoss, focal_loss
from focalbench.losses.softmax.semantics import FocalArgs, validate
from focalbench.losses.varifocal.api import RECOMMENDED_VARIFOCAL, VarifocalLoss, varifocal_loss
from focalbench.losses.varifocal.semantics import VarifocalArgs, ultralytics_targets

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
    "RECOMMENDED_DFL",
    "RECOMMENDED_LINEAR",
    "RECOMMENDED_QUALITY",
    "RECOMMENDED_SIGMOID",
    "RECOMMENDED_VARIFOCAL",
    "ConstantGamma",
    "CosineWarmupGamma",
    "DflArgs",
    "DistributionFocalLoss",
    "FocalArgs",
    "FocalLoss",
    "FusedLinearFocalLoss",
    "GammaSchedule",
    "Implementation",
    "KnownDefect",
    "LinearArgs",
    "LinearWarmupGamma",
    "QualityArgs",
    "QualityFocalLoss",
    "SigmoidArgs",
    "SigmoidFocalLoss",
    "StepGamma",
    "VarifocalArgs",
    "VarifocalLoss",
    "check_values",
    "class_index_targets",
    "distribution_focal_loss",
    "fused_linear_focal_loss",
    "focal_loss",
    "get_implementation",
    "label_score_targets",
    "list_implementations",
    "load_implementation",
    "quality_focal_loss",
    "register",
    "sigmoid_focal_loss",
    "ultralytics_targets",
    "validate",
    "varifocal_loss",
]
