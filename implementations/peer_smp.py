"""``smp``: segmentation_models_pytorch's ``softmax_focal_loss_with_logits`` (>= 0.6), the peer, behind a thin adapter.

Only smp's softmax function is entered: its ``FocalLoss(mode="multiclass")`` module is a sigmoid one-vs-rest loss, a
different function. The function lives in ``segmentation_models_pytorch/losses/_functional.py``, which imports only
torch and NumPy; the package's ``__init__`` imports timm and torchvision (the models), which a CPU build of torch may
not be able to import. So the file is loaded on its own, without running the package: install smp without its
dependencies (``pip install --no-deps "segmentation_models_pytorch==0.6.0"``) and this adapter works beside any torch.

How the common arguments map onto smp's, and only where smp has the same meaning:

==================  ==================================================================================================
common              smp
==================  ==================================================================================================
``gamma``           ``gamma``
``alpha``           not declared: the function has no class weights (``alpha=None`` only)
``ignore_index``    not declared: the function has none (``F.nll_loss``'s default -100 zeroes those elements, but
                    ``"mean"`` still counts them)
``reduction``       ``reduction`` (``"mean"`` divides by every element, which is ours without ignored elements)
==================  ==================================================================================================

Declared defects: NaN gradients for 0 < gamma < 1 at confident rows and for gamma > 0 where p_t = 0; ``1 - exp(-nll)``
cancels at confident rows; the mean of an empty batch is NaN.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from focalbench.arena.registry import register, register_unavailable
from focalbench.implementations._peers import (
    CANCELLATION,
    EMPTY_MEAN,
    installed_version,
    nan_gradient_at_p_t_zero,
    nan_gradient_for_fractional_gamma,
)
from focalbench.losses.softmax.semantics import FocalArgs

PACKAGE = "segmentation_models_pytorch"


def _load_softmax_focal_loss():
    """smp's ``softmax_focal_loss_with_logits``, from its ``losses/_functional.py`` alone (the package not run)."""
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{PACKAGE} is not installed (pip install --no-deps '{PACKAGE}>=0.6')")
    path = Path(next(iter(spec.submodule_search_locations))) / "losses" / "_functional.py"
    file_spec = importlib.util.spec_from_file_location(f"focalbench_peer_{PACKAGE}_losses_functional", path)
    if file_spec is None or file_spec.loader is None:
        raise ImportError(f"{path} cannot be loaded")
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module.softmax_focal_loss_with_logits


try:
    smp_softmax_focal_loss = _load_softmax_focal_loss()
except (ImportError, OSError, AttributeError) as error:
    smp_softmax_focal_loss = None
    MISSING = f"{type(error).__name__}: {error}"


def smp(args: FocalArgs) -> torch.Tensor:
    """smp's softmax_focal_loss_with_logits: log_softmax, nll_loss, (1 - exp(-nll))^gamma."""
    return smp_softmax_focal_loss(args.logits, args.target, gamma=args.gamma, reduction=args.reduction)


if smp_softmax_focal_loss is None:
    register_unavailable("smp", MISSING, family="softmax")
else:
    register(
        "smp",
        description=f"segmentation_models_pytorch {installed_version(PACKAGE)}: softmax_focal_loss_with_logits (peer)",
        capabilities={"dense", "reduction:none", "double_backward"},
        known_defects=(
            *nan_gradient_for_fractional_gamma(),
            *nan_gradient_at_p_t_zero("impossible_target", "beyond_range"),
            EMPTY_MEAN,
            CANCELLATION,
        ),
        version=installed_version(PACKAGE),
        peer=True,
        family="softmax",
    )(smp)
