r"""Gamma schedules ("soft-gamma"): the focusing parameter as a function of the training step.

A schedule is advanced by the training loop like a learning-rate scheduler, one :meth:`GammaSchedule.step` per
optimizer step, and pushes each new value to two places:

* ``criterion.gamma`` of the criterion it holds, e.g. a :class:`~focalbench.FocalLoss` or any object with a ``gamma``
  attribute. The product's modules keep gamma as a 0-dim float64 tensor (:class:`InPlaceScalar`) that assigning a
  number fills **in place**, so a compiled training step sees a new value of the same input, not a new constant:
  one graph for any number of steps;
* :attr:`GammaSchedule.gamma_tensor`, a 0-dim float64 tensor updated in place, to pass as ``gamma`` to compiled code
  that calls a loss function itself. A Python float read inside a compiled function is specialized: one graph per
  value, and past torch's recompile limit (8) an error under ``fullgraph=True``.

Schedules, with :math:`t` the number of :meth:`~GammaSchedule.step` calls made so far (0 before the first):

* :class:`ConstantGamma`: :math:`\gamma(t) = \gamma`;
* :class:`StepGamma`: piecewise constant, ``gammas[i]`` from ``milestones[i - 1]`` (inclusive) to ``milestones[i]``;
* :class:`LinearWarmupGamma`: :math:`\gamma_0 + (\gamma_1 - \gamma_0) \min(t, T) / T`;
* :class:`CosineWarmupGamma`: :math:`\gamma_0 + (\gamma_1 - \gamma_0) (1 - \cos(\pi \min(t, T) / T)) / 2`.

Example:
    >>> import torch
    >>> from focalbench import FocalLoss
    >>> criterion = FocalLoss(gamma=0.0)
    >>> schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=4, criterion=criterion)
    >>> for _ in range(2):
    ...     loss = criterion(torch.zeros(3, 4), torch.tensor([0, 1, 2]))   # forward, backward, optimizer.step() ...
    ...     _ = schedule.step()
    >>> criterion
    FocalLoss(gamma=1.0, alpha=None, reduction='mean', ignore_index=-100)
    >>> float(criterion.gamma), schedule.gamma_tensor.item()
    (1.0, 1.0)
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch

from focalbench.losses.common import validate_gamma

__all__ = ["ConstantGamma", "CosineWarmupGamma", "GammaSchedule", "InPlaceScalar", "LinearWarmupGamma", "StepGamma"]


class InPlaceScalar:
    """A loss module's scalar argument (``gamma``, a sigmoid ``alpha``) held as a 0-dim float64 tensor, so that
    ``torch.compile`` sees a tensor input whose value changes, never a Python float it would specialize on.

    Assigning a number fills the module's own tensor **in place** (the same object throughout: a compiled graph keeps
    reading it); assigning a 0-dim floating tensor holds that tensor itself (e.g. a schedule's ``gamma_tensor``, which
    then drives the module directly). Reading gives the tensor. Only the type is checked here: the value (a negative
    gamma, an alpha above 1) is checked by the loss when it is called, as for any argument, where the CUDA path checks
    it on the device. The tensor is not a buffer: it is not in ``state_dict()`` and ``.to()``/``.half()`` leave it a
    float64 CPU scalar (the kernels take it by value, or copy it to their device).

    Example:
        >>> from focalbench import FocalLoss
        >>> criterion = FocalLoss(gamma=2.0)
        >>> held = criterion.gamma
        >>> criterion.gamma = 0.5
        >>> criterion.gamma is held, held
        (True, tensor(0.5000, dtype=torch.float64))
    """

    def __init__(self, expected: str):
        self.expected = expected  # what the type error says the argument must be

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.slot = name, f"_{name}_tensor"

    def __get__(self, module: Any, owner: type | None = None) -> Any:
        if module is None:
            return self
        return module.__dict__[self.slot][0]

    def __set__(self, module: Any, value: object) -> None:
        held = module.__dict__.get(self.slot)
        if isinstance(value, torch.Tensor):
            if value.dim() != 0 or not value.is_floating_point():
                raise TypeError(
                    f"{self.name} must be {self.expected} or a 0-dim floating tensor. Got: tensor of shape "
                    f"{tuple(value.shape)} and dtype {value.dtype}"
                )
            module.__dict__[self.slot] = (value, held is not None and value is held[0] and held[1])
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{self.name} must be {self.expected}. Got: {type(value).__name__} {value!r}")
        if held is not None and held[1]:  # our own tensor: a new value, the same input of a compiled graph
            with torch.no_grad():
                held[0].fill_(float(value))
        else:  # first value, or the tensor held was the caller's: do not write into it
            with torch.inference_mode(False):  # built under inference_mode, it must still take values after it
                module.__dict__[self.slot] = (torch.tensor(float(value), dtype=torch.float64), True)

    def repr_of(self, module: Any) -> str:
        """How ``module``'s repr shows the value: ``2.0`` for its own tensor, ``tensor(2.0)`` for a caller's."""
        value, own = module.__dict__[self.slot]
        number = repr(float(value))
        if own:
            return number
        kind = "" if value.dtype == torch.float64 else f", dtype={value.dtype}"
        where = "" if value.device.type == "cpu" else f", device='{value.device}'"
        return f"tensor({number}{kind}{where})"


def _gamma(name: str, value: object) -> float:
    """A finite float ``>= 0``: the loss's own ``gamma`` rule (``semantics``), with the message naming ``name``."""
    try:
        return validate_gamma(value)
    except (TypeError, ValueError) as error:
        raise type(error)(name + str(error).removeprefix("gamma")) from None


def _count(name: str, value: object, minimum: int) -> int:
    """An integer ``>= minimum`` (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}. Got: {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Got: {value!r}")
    return int(value)


class GammaSchedule(ABC):
    """Base class: gamma as a function of the step count, pushed to a criterion and to :attr:`gamma_tensor`.

    Subclasses define :meth:`gamma_at` and :meth:`config` (their constructor arguments, for :meth:`state_dict`).

    Args:
        criterion: an object with a ``gamma`` attribute (e.g. :class:`~focalbench.FocalLoss`) whose ``gamma`` is set
            to the schedule's value (a float; a product module fills its gamma tensor in place) at construction and
            after every :meth:`step`; ``None`` for none. Default: None.

    Attributes:
        gamma_tensor: 0-dim float64 CPU tensor holding the current gamma, updated in place (same object throughout).
        last_step: number of :meth:`step` calls so far.
    """

    kind: str = ""  # a short name per subclass, stored in state_dict

    def __init__(self, *, criterion: Any = None):
        self.criterion: Any = None
        self.last_step = 0
        self.gamma_tensor = torch.zeros((), dtype=torch.float64)
        self.attach(criterion)

    def attach(self, criterion: Any) -> GammaSchedule:
        """Drive ``criterion.gamma`` from now on (``None`` to detach), set it to the current gamma; returns ``self``.

        Example:
            >>> from focalbench import FocalLoss
            >>> criterion = FocalLoss(gamma=2.0)
            >>> ConstantGamma(0.5).attach(criterion).criterion
            FocalLoss(gamma=0.5, alpha=None, reduction='mean', ignore_index=-100)
        """
        if criterion is not None and not hasattr(criterion, "gamma"):
            raise TypeError(
                f"criterion must be None or have a gamma attribute (e.g. FocalLoss). Got: {type(criterion).__name__}"
            )
        self.criterion = criterion
        self._apply()
        return self

    @abstractmethod
    def gamma_at(self, step: int) -> float:
        """The gamma after ``step`` calls of :meth:`step`."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor arguments (without the criterion), as plain Python values."""

    @property
    def gamma(self) -> float:
        """The current gamma, ``gamma_at(last_step)``."""
        return self.gamma_at(self.last_step)

    def _apply(self) -> None:
        value = self.gamma
        self.gamma_tensor.fill_(value)
        # a criterion built with gamma=schedule.gamma_tensor already holds the value: assigning would replace it
        if self.criterion is not None and getattr(self.criterion, "gamma", None) is not self.gamma_tensor:
            self.criterion.gamma = value

    def step(self) -> float:
        """Advance one step (call once per optimizer step, after it) and return the new gamma."""
        self.last_step += 1
        self._apply()
        return self.gamma

    def state_dict(self) -> dict[str, Any]:
        """``{"kind", "last_step", "config"}``: everything needed to resume, as plain Python values."""
        return {"kind": self.kind, "last_step": self.last_step, "config": self.config()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of the same kind of schedule (its configuration and step), then apply it."""
        if not isinstance(state_dict, dict) or not {"kind", "last_step", "config"} <= set(state_dict):
            raise TypeError(f"state_dict must be a dict with kind, last_step and config. Got: {state_dict!r}")
        if state_dict["kind"] != self.kind:
            raise ValueError(f"state_dict must come from a {self.kind!r} schedule. Got: {state_dict['kind']!r}")
        last_step = _count("last_step", state_dict["last_step"], 0)
        config = state_dict["config"]
        if not isinstance(config, dict) or set(config) != set(self.config()):
            raise ValueError(f"state_dict['config'] must have the keys {sorted(self.config())}. Got: {config!r}")
        restored = type(self)(**config)  # validates the configuration
        self.__dict__.update({k: v for k, v in restored.__dict__.items() if k not in ("gamma_tensor", "criterion")})
        self.last_step = last_step
        self._apply()

    def __repr__(self) -> str:
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({arguments}, last_step={self.last_step}, gamma={self.gamma!r})"


class ConstantGamma(GammaSchedule):
    """The same gamma at every step (a fixed-gamma baseline in schedule form).

    Example:
        >>> schedule = ConstantGamma(2.0)
        >>> [schedule.gamma] + [schedule.step() for _ in range(2)]
        [2.0, 2.0, 2.0]
    """

    kind = "constant"

    def __init__(self, gamma: float, *, criterion: Any = None):
        self.value = _gamma("gamma", gamma)
        super().__init__(criterion=criterion)

    def gamma_at(self, step: int) -> float:
        return self.value

    def config(self) -> dict[str, Any]:
        return {"gamma": self.value}


class StepGamma(GammaSchedule):
    """Piecewise constant: ``gammas[0]`` before ``milestones[0]``, ``gammas[i]`` from ``milestones[i - 1]`` on.

    Args:
        milestones: strictly increasing step counts ``>= 1`` at which gamma changes.
        gammas: ``len(milestones) + 1`` values, each a finite float ``>= 0``.
        criterion: see :class:`GammaSchedule`.

    Example:
        >>> schedule = StepGamma(milestones=[2, 4], gammas=[0.0, 1.0, 2.0])
        >>> [schedule.gamma] + [schedule.step() for _ in range(5)]
        [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    """

    kind = "step"

    def __init__(self, milestones: Sequence[int], gammas: Sequence[float], *, criterion: Any = None):
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(f"milestones must be a sequence of integers. Got: {type(milestones).__name__}")
        if isinstance(gammas, (str, bytes)) or not isinstance(gammas, Sequence):
            raise TypeError(f"gammas must be a sequence of numbers. Got: {type(gammas).__name__}")
        self.milestones = [_count(f"milestones[{i}]", m, 1) for i, m in enumerate(milestones)]
        if any(b <= a for a, b in zip(self.milestones[:-1], self.milestones[1:], strict=True)):
            raise ValueError(f"milestones must be strictly increasing. Got: {self.milestones}")
        self.gammas = [_gamma(f"gammas[{i}]", g) for i, g in enumerate(gammas)]
        if len(self.gammas) != len(self.milestones) + 1:
            raise ValueError(
                f"gammas must have len(milestones) + 1 = {len(self.milestones) + 1} values. Got: {len(self.gammas)}"
            )
        super().__init__(criterion=criterion)

    def gamma_at(self, step: int) -> float:
        return self.gammas[sum(step >= m for m in self.milestones)]

    def config(self) -> dict[str, Any]:
        return {"milestones": list(self.milestones), "gammas": list(self.gammas)}


class LinearWarmupGamma(GammaSchedule):
    """From ``gamma0`` to ``gamma1`` linearly over ``warmup_steps`` steps, then ``gamma1``.

    Args:
        gamma0: gamma before the first step (finite, ``>= 0``).
        gamma1: gamma from step ``warmup_steps`` on (finite, ``>= 0``); below ``gamma0`` gives a decay.
        warmup_steps: number of steps of the ramp, ``>= 1``.
        criterion: see :class:`GammaSchedule`.

    Example:
        >>> schedule = LinearWarmupGamma(0.0, 2.0, warmup_steps=4)
        >>> [schedule.gamma] + [schedule.step() for _ in range(5)]
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    """

    kind = "linear"

    def __init__(self, gamma0: float, gamma1: float, warmup_steps: int, *, criterion: Any = None):
        self.gamma0, self.gamma1 = _gamma("gamma0", gamma0), _gamma("gamma1", gamma1)
        self.warmup_steps = _count("warmup_steps", warmup_steps, 1)
        super().__init__(criterion=criterion)

    def progress(self, step: int) -> float:
        """The fraction of the ramp done after ``step`` steps, in ``[0, 1]``."""
        return min(step, self.warmup_steps) / self.warmup_steps

    def gamma_at(self, step: int) -> float:
        return self.gamma0 + (self.gamma1 - self.gamma0) * self.progress(step)

    def config(self) -> dict[str, Any]:
        return {"gamma0": self.gamma0, "gamma1": self.gamma1, "warmup_steps": self.warmup_steps}


class CosineWarmupGamma(LinearWarmupGamma):
    """From ``gamma0`` to ``gamma1`` along a half cosine over ``warmup_steps`` steps (slow-fast-slow), then ``gamma1``.

    Arguments as :class:`LinearWarmupGamma`.

    Example:
        >>> schedule = CosineWarmupGamma(0.0, 2.0, warmup_steps=4)
        >>> [round(g, 4) for g in [schedule.gamma] + [schedule.step() for _ in range(5)]]
        [0.0, 0.2929, 1.0, 1.7071, 2.0, 2.0]
    """

    kind = "cosine"

    def gamma_at(self, step: int) -> float:
        return self.gamma0 + (self.gamma1 - self.gamma0) * (1.0 - math.cos(math.pi * self.progress(step))) / 2.0
