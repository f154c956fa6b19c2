"""The CPU kernel of Quality Focal Loss: ``quality_focal_forward`` in ``quality_cpu.c``, through its typed table.

A library of its own (:class:`~focalbench.kernels.build.TypedLibrary`: built at first use, a signature table that a
test checks against the C source), so that a build failure of this family's kernel leaves the others working; it
shares the sigmoid kernel's per-element exponential and logarithm through ``sigmoid_math.h``. Its steps and limits
are in the comment at the top of the C source.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the arguments' type only: the kernels import nothing of the losses
    from focalbench.losses.quality.semantics import QualityArgs

from focalbench.kernels.build import TypedLibrary
from focalbench.kernels.sigmoid_cpu import elementwise_call

__all__ = ["CHUNK", "LIBRARY", "SIGNATURES", "SOURCE", "available", "forward_args"]

SOURCE = Path(__file__).with_name("quality_cpu.c")

#: The exported functions: name -> (C return type, [(C type, parameter name), ...]), in declaration order.
SIGNATURES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "quality_focal_forward": (
        "int64_t",
        [("const void *", "x"), ("const void *", "y"), ("int", "is_double"), ("int64_t", "n"), ("double", "beta"),
         ("double", "scale"), ("void *", "loss"), ("double *", "partial"), ("void *", "grad"), ("int64_t *", "outside"),
         ("int", "threads")],
    ),
}  # fmt: skip

#: The quality family's library: built once per process, at first use.
LIBRARY = TypedLibrary(SOURCE, SIGNATURES)

#: Elements per partial sum (QUALITY_CHUNK in the C source): the total does not depend on the number of threads.
CHUNK = 4096

available = LIBRARY.available


def forward_args(args: QualityArgs, need_grad: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The reduced loss (float64 for ``"mean"``/``"sum"``, the compute dtype for ``"none"``) and, when ``need_grad``,
    the gradient of that loss (the reduction's scale folded in), from one sweep over the logits and targets."""
    return elementwise_call(LIBRARY, "quality_focal_forward", args, need_grad, CHUNK, counts_outside=True,
                            y=args.target, beta=float(args.beta))  # fmt: skip
