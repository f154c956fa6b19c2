"""RetinaNet's sigmoid focal loss (torchvision's meaning): :mod:`~.semantics`, :mod:`~.closed_form`, :mod:`~.op`,
:mod:`~.api` (``sigmoid_focal_loss`` and ``SigmoidFocalLoss``), as for the softmax family."""
