"""The arena: every focal loss people use, checked and compared under one interface.

:mod:`~focalbench.arena.family` (the :class:`Family` records), :mod:`~focalbench.arena.registry` (one decorator per
implementation, entry points, ``module:attr``), :mod:`~focalbench.arena.core` (the check framework),
:mod:`~focalbench.arena.checks` (check functions written once), :mod:`~focalbench.arena.families` (each family's
record, checks and cases), :mod:`~focalbench.arena.oracle`, :mod:`~focalbench.arena.tolerances`,
:mod:`~focalbench.arena.accuracy` and :mod:`~focalbench.arena.differential`. The product (:mod:`focalbench.losses`,
:mod:`focalbench.kernels`) imports nothing from here.
"""

from focalbench.arena.family import Family, families, get_family, register_family, unregister_family

__all__ = ["Family", "families", "get_family", "register_family", "unregister_family"]
