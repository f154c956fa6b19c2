"""The kernels behind :func:`focalbench.focal_loss`: the product, apart from the arena of contenders.

* :mod:`focalbench.kernels.cpu`: the C kernel (``focal_cpu.c``), built at first use, and its typed bridge;
* :mod:`focalbench.kernels.ops`: the same kernels as PyTorch custom operators, for ``torch.compile`` and
  ``torch.export``.

Nothing here is imported by ``import focalbench``; :mod:`focalbench.loss` imports what a call needs, at that call.
"""
