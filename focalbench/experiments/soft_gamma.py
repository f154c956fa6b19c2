r"""The soft-gamma experiment: does raising gamma during training beat a fixed gamma on a long-tailed task?

One run trains a small MLP on a synthetic, long-tailed, overlapping Gaussian mixture with one loss condition, and
measures it on a large held-out set. Everything is derived from the seed, offline, on the CPU:

1. **Task** (:class:`Task`): ``C = 4`` classes with frequencies 90/5/3/2 %, ``x ~ N(mu_c, I)`` in 8 dimensions; the
   majority class sits at the origin, each rare class at distance 2.5 in a fixed random direction, so the classes
   overlap (a balanced accuracy near 0.75 is what a well-weighted classifier reaches). The geometry is fixed
   (``geometry_seed``); a run's seed draws its training set (8 000 points: 160 of the rarest class) and its test set
   (40 000 points from the same distribution: about 800 of the rarest class).
2. **Model and budget** (:class:`Budget`): MLP 8-64-64-4 with ReLU, Adam (lr 3e-3), 1 500 steps of 256 samples
   (48 epochs), one thread.
3. **Conditions**: a gamma schedule from :data:`SCHEDULES` (``ce`` = gamma 0, ``gamma1``, ``gamma2``, ``step`` 0 -> 1
   -> 2 at thirds of the budget, ``linear`` and ``cosine`` warm-up 0 -> 2 over the first half) times an alpha from
   :data:`ALPHAS` (``none``, or ``inverse-frequency``: ``alpha_c = N / (C n_c)`` from the training counts, so the
   average weight of a training sample is 1). Every condition trains :class:`~focalbench.FocalLoss` (gamma 0 is
   cross-entropy), with the schedule setting its gamma after each optimizer step.
4. **Pairing**: under one seed every condition sees the same data, the same initial weights and the same batch order,
   so differences between conditions are paired by seed (see :mod:`focalbench.experiments.report`).

Example:
    >>> document = run_soft_gamma([0], budget=Budget(steps=5), schedules=["gamma2"], alphas=["none"])
    >>> row = document["results"][0]
    >>> row["schedule"], row["alpha"], row["seed"], sorted(row["metrics"])
    ('gamma2', 'none', 0, ['accuracy', 'balanced_accuracy', 'ece', 'f1', 'macro_f1', 'recall'])
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from focalbench.bench.environment import environment
from focalbench.experiments.report import soft_gamma_document
from focalbench.experiments.runs import choose
from focalbench.losses.schedule import ConstantGamma, CosineWarmupGamma, GammaSchedule, LinearWarmupGamma, StepGamma
from focalbench.losses.softmax.api import FocalLoss

__all__ = [
    "ALPHAS", "DEFAULT_SEEDS", "QUICK_SEEDS", "SCHEDULES", "Budget", "Task", "classification_metrics",
    "expected_calibration_error", "inverse_frequency_alpha", "run_one", "run_soft_gamma", "seed_list",
]  # fmt: skip

DEFAULT_SEEDS = 20  # Wilcoxon's smallest two-sided p with n pairs is 2 / 2**n: 2e-6 at 20, 0.0625 at 5
QUICK_SEEDS = 3
ECE_BINS = 15

#: schedule name -> the schedule for a budget of ``steps`` optimizer steps
SCHEDULES: dict[str, Callable[[int], GammaSchedule]] = {
    "ce": lambda steps: ConstantGamma(0.0),
    "gamma1": lambda steps: ConstantGamma(1.0),
    "gamma2": lambda steps: ConstantGamma(2.0),
    "step": lambda steps: StepGamma(milestones=[steps // 3, 2 * steps // 3], gammas=[0.0, 1.0, 2.0]),
    "linear": lambda steps: LinearWarmupGamma(0.0, 2.0, warmup_steps=steps // 2),
    "cosine": lambda steps: CosineWarmupGamma(0.0, 2.0, warmup_steps=steps // 2),
}
ALPHAS = ("none", "inverse-frequency")
REFERENCE = "gamma2"  # every condition is compared with fixed gamma 2 under the same alpha


@dataclass(frozen=True)
class Task:
    """A long-tailed, overlapping Gaussian mixture: class ``c`` is ``N(mu_c, I)`` with probability ``frequencies[c]``.

    ``mu_0 = 0``; ``mu_c`` for ``c >= 1`` is ``separation`` times a unit vector drawn from ``geometry_seed``.
    """

    dims: int = 8
    frequencies: tuple[float, ...] = (0.90, 0.05, 0.03, 0.02)
    separation: float = 2.5
    train_size: int = 8000
    test_size: int = 40000
    geometry_seed: int = 20261128

    @property
    def num_classes(self) -> int:
        return len(self.frequencies)

    def means(self) -> np.ndarray:
        """``(C, dims)`` class means (float64), the same for every seed."""
        directions = np.random.default_rng(self.geometry_seed).standard_normal((self.num_classes, self.dims))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        means = self.separation * directions
        means[0] = 0.0
        return means

    def sample(self, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x_train, y_train, x_test, y_test)`` for ``seed``: float32 features, int64 labels; train and test draw
        from independent streams, so changing one size leaves the other set as it was."""
        means = self.means()
        sets = []
        for stream, size in zip(np.random.SeedSequence(seed).spawn(2), (self.train_size, self.test_size), strict=True):
            rng = np.random.default_rng(stream)
            labels = rng.choice(self.num_classes, size=size, p=np.asarray(self.frequencies) / sum(self.frequencies))
            features = means[labels] + rng.standard_normal((size, self.dims))
            sets += [torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))]
        return sets[0], sets[1], sets[2], sets[3]


@dataclass(frozen=True)
class Budget:
    """Model and training budget: an MLP ``dims -> hidden -> hidden -> C``, Adam, ``steps`` batches."""

    steps: int = 1500
    batch_size: int = 256
    learning_rate: float = 3e-3
    hidden: int = 64

    def __post_init__(self) -> None:
        for name, minimum in (("steps", 3), ("batch_size", 1), ("hidden", 1)):  # 3 steps: the step schedule's thirds
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}. Got: {value!r}")


def seed_list(count: int | None = None, quick: bool = False) -> list[int]:
    """Seeds ``0 .. count - 1``; ``count`` defaults to :data:`DEFAULT_SEEDS` (:data:`QUICK_SEEDS` if ``quick``).

    Example:
        >>> seed_list(quick=True)
        [0, 1, 2]
    """
    if count is None:
        count = QUICK_SEEDS if quick else DEFAULT_SEEDS
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"seeds must be an integer >= 2. Got: {type(count).__name__} {count!r}")
    if count < 2:
        raise ValueError(f"seeds must be an integer >= 2 (a paired test needs two seeds at least). Got: {count}")
    return list(range(count))


def inverse_frequency_alpha(labels: torch.Tensor, num_classes: int) -> list[float]:
    """``alpha_c = N / (C n_c)``: inverse class frequency, scaled so that the mean weight over ``labels`` is 1.

    Example:
        >>> inverse_frequency_alpha(torch.tensor([0, 0, 0, 1]), 2)
        [0.6666666666666666, 2.0]
    """
    counts = torch.bincount(labels, minlength=num_classes).double()
    if bool((counts == 0).any()):
        raise ValueError(f"labels must contain every class. Got: counts {counts.long().tolist()}")
    return (labels.numel() / (num_classes * counts)).tolist()


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: ``sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|`` over ``bins`` equal-width bins
    ``(k / bins, (k + 1) / bins]`` of the top probability.

    Example:
        >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1])), 4)
        0.35
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    total = 0.0
    for b in np.unique(which):
        members = which == b
        total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Accuracy, per-class recall and F1, balanced accuracy (mean recall), macro-F1 and top-label ECE.

    Args:
        probabilities: ``(n, C)`` predicted class probabilities.
        labels: ``(n,)`` true classes; every class should occur (a class without examples has recall 0).

    Example:
        >>> m = classification_metrics(np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]), np.array([0, 1, 1]))
        >>> m["recall"], m["balanced_accuracy"]
        ([1.0, 0.5], 0.75)
    """
    num_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    recall, f1 = [], []
    for c in range(num_classes):
        true_positive = int(np.sum((predicted == c) & (labels == c)))
        actual, claimed = int(np.sum(labels == c)), int(np.sum(predicted == c))
        recall.append(true_positive / actual if actual else 0.0)
        f1.append(2 * true_positive / (actual + claimed) if actual + claimed else 0.0)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(np.mean(recall)),
        "macro_f1": float(np.mean(f1)),
        "ece": expected_calibration_error(probabilities, labels),
        "recall": recall,
        "f1": f1,
    }


def _model(task: Task, budget: Budget, seed: int) -> nn.Module:
    """The MLP, initialized from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(task.dims, budget.hidden),
            nn.ReLU(),
            nn.Linear(budget.hidden, budget.hidden),
            nn.ReLU(),
            nn.Linear(budget.hidden, task.num_classes),
        )


def run_one(
    data: Sequence[torch.Tensor], task: Task, budget: Budget, seed: int, schedule_name: str, alpha_name: str
) -> dict:
    """Train one condition on ``data = task.sample(seed)`` and return its result row (metrics on the test set)."""
    x_train, y_train, x_test, y_test = data
    alpha = inverse_frequency_alpha(y_train, task.num_classes) if alpha_name == "inverse-frequency" else None
    criterion = FocalLoss(gamma=0.0, alpha=alpha)
    schedule = SCHEDULES[schedule_name](budget.steps).attach(criterion)
    model = _model(task, budget, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.learning_rate)
    order = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    batches_per_epoch = len(y_train) // budget.batch_size  # the last partial batch is dropped
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size must be <= the training set size {len(y_train)}. Got: {budget.batch_size}")
    while schedule.last_step < budget.steps:
        permutation = torch.randperm(len(y_train), generator=order)
        for batch in range(min(batches_per_epoch, budget.steps - schedule.last_step)):
            index = permutation[batch * budget.batch_size : (batch + 1) * budget.batch_size]
            loss = criterion(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    train_s = time.perf_counter() - started
    with torch.no_grad():
        probabilities = torch.softmax(model(x_test).double(), dim=1).numpy()
    return {
        "schedule": schedule_name,
        "alpha": alpha_name,
        "seed": seed,
        "schedule_state": schedule.state_dict(),
        "alpha_values": alpha,
        "final_gamma": schedule.gamma,
        "final_train_loss": loss.item(),
        "metrics": classification_metrics(probabilities, y_test.numpy()),
        "train_s": round(train_s, 3),
    }


def run_soft_gamma(
    seeds: Sequence[int],
    *,
    task: Task = Task(),  # noqa: B008  (frozen dataclass: immutable default)
    budget: Budget = Budget(),  # noqa: B008
    schedules: Iterable[str] | None = None,
    alphas: Iterable[str] | None = None,
    threads: int = 1,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Run every (alpha, schedule) condition for every seed; return the report document (see ``experiment_report``).

    Args:
        seeds: the seeds, e.g. :func:`seed_list`; each one draws the data, the initial weights and the batch order.
        task, budget: the task and the training budget. Default: :class:`Task`, :class:`Budget`.
        schedules: names from :data:`SCHEDULES`. Default: all.
        alphas: names from :data:`ALPHAS`. Default: both.
        threads: torch threads during the runs (restored afterwards); recorded in the report. Default: 1.
        quick: recorded in the settings (the command's ``--quick``: fewer seeds, same task and budget).
        progress: called with one line per finished run (the command prints it on stderr). Default: None.
    """
    schedules = choose("schedules", schedules, list(SCHEDULES))
    alphas = choose("alphas", alphas, ALPHAS)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of integers. Got: []")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    rows: list[dict] = []
    total = len(seeds) * len(alphas) * len(schedules)
    try:
        env = environment("cpu")  # records the thread count set above
        for seed in seeds:
            data = task.sample(seed)
            for alpha_name in alphas:
                for schedule_name in schedules:
                    row = run_one(data, task, budget, seed, schedule_name, alpha_name)
                    rows.append(row)
                    if progress is not None:
                        m = row["metrics"]
                        progress(
                            f"  [{len(rows)}/{total}] seed {seed} alpha={alpha_name} schedule={schedule_name}: "
                            f"balanced accuracy {m['balanced_accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
                            f"ECE {m['ece']:.4f} ({row['train_s']:.1f} s)"
                        )
    finally:
        torch.set_num_threads(previous_threads)
    settings = {
        "experiment": "soft-gamma",
        "quick": quick,
        "seeds": seeds,
        "threads": threads,
        "task": dataclasses.asdict(task),
        "budget": dataclasses.asdict(budget),
        "model": f"MLP {task.dims}-{budget.hidden}-{budget.hidden}-{task.num_classes}, ReLU, Adam",
        "schedules": {name: SCHEDULES[name](budget.steps).state_dict() for name in schedules},
        "alphas": alphas,
        "reference": REFERENCE,
        "ece_bins": ECE_BINS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    return soft_gamma_document(env, settings, rows)
