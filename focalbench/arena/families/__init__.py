"""The built-in loss families, one package each; :mod:`focalbench.arena.family` imports every package here (each
registers its :class:`~focalbench.arena.family.Family` record when imported)."""
