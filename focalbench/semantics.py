"""Deprecated: the softmax family's semantics moved to :mod:`focalbench.losses.softmax.semantics` (the rules every
family shares to :mod:`focalbench.losses.common`); this path keeps working for one release."""

import warnings

from focalbench.losses.common import FLOAT_DTYPES, HALF_DTYPES, REDUCTIONS, compute_dtype, reduce_loss
from focalbench.losses.softmax.semantics import FocalArgs, validate

__all__ = ["FLOAT_DTYPES", "HALF_DTYPES", "REDUCTIONS", "FocalArgs", "compute_dtype", "reduce_loss", "validate"]

warnings.warn(
    "focalbench.semantics is deprecated: import focalbench.losses.softmax.semantics (or the names from focalbench)",
    DeprecationWarning,
    stacklevel=2,
)
