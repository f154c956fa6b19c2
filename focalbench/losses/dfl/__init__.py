"""Distribution Focal Loss (GFL; the box loss of ultralytics YOLOv8/YOLO11 and mmdet GFL heads): the product —
:mod:`~.semantics`, :mod:`~.closed_form`, :mod:`~.kernels`, :mod:`~.op`, :mod:`~.api` (``distribution_focal_loss``
and ``DistributionFocalLoss``), as for the other families."""
