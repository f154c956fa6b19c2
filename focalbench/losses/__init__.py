"""The product: the focal losses focalbench ships, one package per family (:mod:`~focalbench.losses.softmax`,
:mod:`~focalbench.losses.sigmoid`) over what they share (:mod:`~focalbench.losses.common`), and the gamma schedules
(:mod:`~focalbench.losses.schedule`). Imports nothing from the arena, the benchmarks or the command line, and builds
nothing at import."""
