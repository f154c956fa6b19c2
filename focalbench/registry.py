"""Deprecated: the registry moved to :mod:`focalbench.arena.registry`; this path keeps working for one release."""

import warnings

from focalbench.arena.registry import *  # noqa: F403 - the old module's names
from focalbench.arena.registry import __all__  # noqa: F401

warnings.warn(
    "focalbench.registry is deprecated: import focalbench.arena.registry (or the names from focalbench)",
    DeprecationWarning,
    stacklevel=2,
)
