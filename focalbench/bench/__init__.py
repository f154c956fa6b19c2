"""The benchmarks, one job per module: :mod:`~.runner` (interleaved timings of a family's workload),
:mod:`~.timing`, :mod:`~.stats`, :mod:`~.environment`, :mod:`~.report`, :mod:`~.gate` and :mod:`~.ab` (regression
gating), :mod:`~.plot`, :mod:`~.tables` (the generated tables of README.md and docs/)."""
