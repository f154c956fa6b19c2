"""The softmax focal loss: :mod:`~.semantics` (the one definition of its arguments), :mod:`~.closed_form` (the
derivation and the exact differentiable gradient), :mod:`~.op` (the custom operator seen by ``torch.compile`` and
``torch.export``), :mod:`~.api` (``focal_loss`` and ``FocalLoss``)."""
