"""Training experiments, each a module with its report beside it: :mod:`~.soft_gamma` (gamma schedules against a
fixed gamma), :mod:`~.report`."""
