"""Varifocal loss (VarifocalNet's IoU-aware classification loss): :mod:`~.semantics`, :mod:`~.closed_form`,
:mod:`~.kernels`, :mod:`~.op`, :mod:`~.api` (``varifocal_loss`` and ``VarifocalLoss``), as for the sigmoid family."""
