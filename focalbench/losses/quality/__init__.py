"""Quality Focal Loss (Li et al., 2020; GFL; mmdet's ``QualityFocalLoss``): :mod:`~.semantics`, :mod:`~.closed_form`,
:mod:`~.kernels`, :mod:`~.op`, :mod:`~.api` (``quality_focal_loss`` and ``QualityFocalLoss``), as for the sigmoid
family."""
