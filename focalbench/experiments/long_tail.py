r"""The long-tail experiment: focal loss, FLSD-53 and the soft-gamma schedules on real, long-tailed digits, with
calibration.

Mukhoti et al. (NeurIPS 2020) report that deep networks trained with cross-entropy become over-confident and that focal
loss calibrates them (CIFAR-10, ResNet-50: ECE 4.35 % with cross-entropy, 1.48 % with gamma = 3, 1.55 % with the
sample-dependent FLSD-53, error within 0.3 points). This experiment asks the same on a task the CPU can train many
times: real digits, made long-tailed, a small CNN trained until it fits its training set.

1. **Data** (:class:`LongTailTask`): the 5 000 real MNIST digits of :mod:`~focalbench.experiments.digits`, average-
   pooled to 14 x 14. Per seed, each class's 500 digits are shuffled; the first ``test_per_class`` (100) form the
   balanced test set, the rest (400) the pool. The frequency ranks are a seed's permutation of the digits (rank 0 is
   the head), and rank ``r`` keeps ``n_r = round(n_max * IF ** (-r / (C - 1)))`` digits of its pool (the exponential
   profile of Cui et al. 2019): 1 636 training digits at IF = 10 (400 down to 40), 1 120 at IF = 50 (400 down to 8).
   Under one seed the IF = 50 training set is a subset of the IF = 10 one and the test set is the same.
2. **Model and budget** (:class:`LongTailBudget`): conv 3x3 16 - max-pool - conv 3x3 32 - max-pool - linear 64 -
   linear 10 (ReLU), Adam (lr 1e-3), 2 000 steps of 64 (78 epochs at IF = 10, 114 at IF = 50), no augmentation,
   no weight decay, one thread: long enough to fit the training set (training accuracy 1.0), the regime in which
   cross-entropy turns over-confident.
3. **Conditions**: a loss from :data:`LOSSES` (``ce``; focal ``gamma1``/``gamma2``/``gamma3``; ``flsd53``: gamma 5
   where ``p_t < 0.2`` and 3 elsewhere, per sample, as Mukhoti et al.'s FLSD-53; the soft-gamma schedules ``step``,
   ``linear``, ``cosine`` of :mod:`~focalbench.experiments.soft_gamma`) times an alpha from :data:`ALPHAS` (``none``,
   or ``class-balanced``: Cui et al.'s effective-number weights ``(1 - beta) / (1 - beta ** n_c)``, beta 0.999,
   scaled to sum to C) times an imbalance factor (10, 50). Every loss is :func:`focalbench.focal_loss` (gamma 0 is
   cross-entropy); FLSD-53 takes both gammas' per-sample losses from it and picks one by ``p_t`` with
   ``torch.where`` (no host loop, no sync).
4. **Metrics** on the balanced test set: accuracy (= balanced accuracy there), macro-F1, recall per frequency rank
   (head = ranks 0-2, tail = ranks 7-9), ECE and adaptive ECE (15 bins: equal width, and equal mass), NLL, mean
   confidence minus accuracy (over-confidence > 0), and the reliability diagram's bins.
5. **Pairing**: every condition of one seed sees the same data, initial weights and batch order.

Cost on a 2-core Intel Xeon VM (AVX-512), one torch thread a run, both cores busy: 8-10 s a run; the full run (32
conditions x :data:`DEFAULT_SEEDS` seeds = 320 runs) with 2 workers took 36 min (other work shared the cores for part
of it; about 27 min on idle cores); ``--quick`` (8 runs) about 1 min.

Example:
    >>> document = run_long_tail([0], budget=LongTailBudget(steps=4), losses=["ce"], alphas=["none"],
    ...                          imbalances=[10], bar=False)  # doctest: +SKIP
    >>> sorted(document["results"][0]["metrics"])[:4]  # doctest: +SKIP
    ['accuracy', 'adaptive_ece', 'balanced_accuracy', 'ece']
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from focalbench.experiments.runs import choose, map_runs, parse_executor, run_environment
from focalbench.experiments.soft_gamma import ECE_BINS, SCHEDULES, classification_metrics, seed_list
from focalbench.losses.schedule import ConstantGamma, GammaSchedule
from focalbench.losses.softmax.api import FocalLoss, focal_loss

__all__ = [
    "ALPHAS", "DEFAULT_SEEDS", "IMBALANCES", "LOSSES", "QUICK_SEEDS", "FLSD53", "LongTailBudget", "LongTailTask",
    "adaptive_calibration_error", "class_balanced_alpha", "long_tail_counts", "long_tail_seeds", "reliability_bins",
    "run_long_tail", "run_one",
]  # fmt: skip

DEFAULT_SEEDS = 10  # the largest Holm family (16 comparisons) then has the floor 16 * 2 / 2**10 = 0.031 < 0.05
QUICK_SEEDS = 2
IMBALANCES = (10, 50)
ALPHAS = ("none", "class-balanced")
CLASS_BALANCED_BETA = 0.999
FOCAL_GAMMAS = {"gamma1": 1.0, "gamma2": 2.0, "gamma3": 3.0}
SCHEDULE_NAMES = ("step", "linear", "cosine")
#: loss name -> what it is, in the report's words
LOSSES = {
    "ce": "cross-entropy (focal loss at gamma 0)",
    "gamma1": "focal loss, gamma 1",
    "gamma2": "focal loss, gamma 2",
    "gamma3": "focal loss, gamma 3",
    "flsd53": "FLSD-53: gamma 5 where p_t < 0.2, else 3 (per sample)",
    "step": "soft-gamma: gamma 0 -> 1 -> 2 at thirds of the budget",
    "linear": "soft-gamma: gamma 0 -> 2 linearly over the first half",
    "cosine": "soft-gamma: gamma 0 -> 2 along a half cosine over the first half",
}
QUICK = {"losses": ("ce", "gamma3", "flsd53", "linear"), "alphas": ("none",), "imbalances": (50,)}
HEAD_RANKS, TAIL_RANKS = (0, 1, 2), (7, 8, 9)


@dataclass(frozen=True)
class LongTailTask:
    """Real digits, a balanced test set and a long-tailed training set per seed (see the module docstring)."""

    image_size: int = 14
    test_per_class: int = 100
    train_max: int = 400  # n_max: the head class keeps its whole pool

    def __post_init__(self) -> None:
        if self.image_size not in (7, 14, 28):
            raise ValueError(f"image_size must be 7, 14 or 28 (28 / 2**k). Got: {self.image_size!r}")
        for name, low, high in (("test_per_class", 1, 499), ("train_max", 1, 499)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in [{low}, {high}]. Got: {value!r}")
        if self.test_per_class + self.train_max > 500:
            raise ValueError(f"test_per_class + train_max must be <= 500 (digits per class). "
                             f"Got: {self.test_per_class} + {self.train_max}")  # fmt: skip

    def sample(self, seed: int, imbalance: float) -> dict[str, torch.Tensor]:
        """``{"x_train", "y_train", "x_test", "y_test", "rank_of_class"}`` for ``seed`` at imbalance factor
        ``imbalance``: float32 images ``(n, 1, s, s)`` in [0, 1], int64 labels; ``rank_of_class[c]`` is digit ``c``'s
        frequency rank (0 = head)."""
        from focalbench.experiments.digits import load_mnist_5k

        images, labels = load_mnist_5k()
        pixels = images.unsqueeze(1).float().div_(255.0)
        if self.image_size != 28:
            pixels = F.avg_pool2d(pixels, 28 // self.image_size)
        classes = int(labels.max()) + 1
        rng = np.random.default_rng(np.random.SeedSequence([seed, 20261202]))
        digit_of_rank = rng.permutation(classes)
        counts = long_tail_counts(self.train_max, imbalance, classes)
        train, test = [], []
        for c in range(classes):
            members = np.flatnonzero(labels.numpy() == c)[rng.permutation(int((labels == c).sum()))]
            test.append(members[: self.test_per_class])
            rank = int(np.flatnonzero(digit_of_rank == c)[0])
            train.append(members[self.test_per_class : self.test_per_class + counts[rank]])
        train_index = torch.from_numpy(np.concatenate(train))
        test_index = torch.from_numpy(np.concatenate(test))
        rank_of_class = torch.from_numpy(np.argsort(digit_of_rank))
        return {
            "x_train": pixels[train_index], "y_train": labels[train_index],
            "x_test": pixels[test_index], "y_test": labels[test_index], "rank_of_class": rank_of_class,
        }  # fmt: skip


@dataclass(frozen=True)
class LongTailBudget:
    """The CNN and its training budget: ``steps`` batches of ``batch_size``, Adam at ``learning_rate``."""

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    channels: tuple[int, int] = (16, 32)
    hidden: int = 64
    log_every: int = 100

    def __post_init__(self) -> None:
        for name, minimum in (("steps", 3), ("batch_size", 1), ("hidden", 1), ("log_every", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}. Got: {value!r}")


def long_tail_counts(n_max: int, imbalance: float, classes: int) -> list[int]:
    """Training digits per frequency rank: ``round(n_max * imbalance ** (-r / (classes - 1)))``, at least 1.

    Example:
        >>> long_tail_counts(400, 10, 10)
        [400, 310, 240, 186, 144, 111, 86, 67, 52, 40]
    """
    if isinstance(imbalance, bool) or not isinstance(imbalance, (int, float)) or not imbalance >= 1:
        raise ValueError(f"imbalance must be a number >= 1 (largest over smallest class). Got: {imbalance!r}")
    if classes < 2:
        raise ValueError(f"classes must be >= 2. Got: {classes}")
    return [max(1, round(n_max * imbalance ** (-r / (classes - 1)))) for r in range(classes)]


def class_balanced_alpha(labels: torch.Tensor, num_classes: int, beta: float = CLASS_BALANCED_BETA) -> list[float]:
    """Cui et al. (2019)'s class-balanced weights ``(1 - beta) / (1 - beta ** n_c)``, scaled to sum to ``num_classes``.

    Example:
        >>> [round(a, 4) for a in class_balanced_alpha(torch.tensor([0] * 300 + [1] * 30), 2)]
        [0.2047, 1.7953]
    """
    counts = torch.bincount(labels, minlength=num_classes).double()
    if bool((counts == 0).any()):
        raise ValueError(f"labels must contain every class. Got: counts {counts.long().tolist()}")
    weights = (1.0 - beta) / (1.0 - beta**counts)
    return (weights * num_classes / weights.sum()).tolist()


class FLSD53(nn.Module):
    """Mukhoti et al.'s sample-dependent focal loss FLSD-53: gamma 5 for samples with ``p_t < 0.2``, 3 otherwise.

    Both per-sample losses come from :func:`focalbench.focal_loss` (``reduction="none"``); ``torch.where`` picks one
    by the detached ``p_t``, so the step has no host loop and no sync; the mean is over the batch.

    Example:
        >>> logits, target = torch.tensor([[3.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 0])
        >>> loss = FLSD53()(logits, target)  # p_t 0.95 (gamma 3) and 0.047 (gamma 5)
        >>> first, second = focal_loss(logits[:1], target[:1], gamma=3.0), focal_loss(logits[1:], target[1:], gamma=5.0)
        >>> expected = (first + second) / 2
        >>> bool(torch.allclose(loss, expected))
        True
    """

    def __init__(self, alpha: Sequence[float] | None = None, threshold: float = 0.2, low: float = 5.0,
                 high: float = 3.0):  # fmt: skip
        super().__init__()
        self.alpha, self.threshold, self.low, self.high = alpha, threshold, low, high

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            p_target = torch.softmax(logits.float(), dim=1).gather(1, target.unsqueeze(1)).squeeze(1)
        at_low = focal_loss(logits, target, gamma=self.low, alpha=self.alpha, reduction="none")
        at_high = focal_loss(logits, target, gamma=self.high, alpha=self.alpha, reduction="none")
        return torch.where(p_target < self.threshold, at_low, at_high).mean()


def _criterion(loss_name: str, alpha: list[float] | None, steps: int) -> tuple[nn.Module, GammaSchedule | None]:
    if loss_name == "flsd53":
        return FLSD53(alpha), None
    criterion = FocalLoss(gamma=0.0, alpha=alpha)
    gamma = FOCAL_GAMMAS.get(loss_name, 0.0)
    schedule = SCHEDULES[loss_name](steps) if loss_name in SCHEDULE_NAMES else ConstantGamma(gamma)
    return criterion, schedule.attach(criterion)


def _model(task: LongTailTask, budget: LongTailBudget, classes: int, seed: int) -> nn.Module:
    """The CNN, initialized from ``seed`` without touching the global random state."""
    first, second = budget.channels
    side = task.image_size // 4
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(1, first, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(second * side * side, budget.hidden), nn.ReLU(), nn.Linear(budget.hidden, classes),
        )  # fmt: skip


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list]:
    """The reliability diagram of the top label: per equal-width bin of confidence, its count, mean confidence and
    accuracy (``None`` where empty).

    Example:
        >>> r = reliability_bins(np.array([[0.9, 0.1], [0.6, 0.4], [0.95, 0.05]]), np.array([0, 1, 0]), bins=2)
        >>> r["count"], r["accuracy"]
        ([0, 3], [None, 0.6666666666666666])
    """
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    out: dict[str, list] = {"count": [], "confidence": [], "accuracy": []}
    for b in range(bins):
        members = which == b
        out["count"].append(int(members.sum()))
        out["confidence"].append(float(confidence[members].mean()) if members.any() else None)
        out["accuracy"].append(float(correct[members].mean()) if members.any() else None)
    return out


def adaptive_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Adaptive ECE (Nguyen & O'Connor 2015; Mukhoti et al.'s AdaECE): ECE over ``bins`` bins of equal mass (the
    predictions sorted by confidence, split into ``bins`` nearly equal parts).

    Example:
        >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
        >>> round(adaptive_calibration_error(p, np.array([0, 0, 1, 0]), bins=2), 4)
        0.15
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    order = np.argsort(confidence, kind="stable")
    total = 0.0
    for part in np.array_split(order, bins):
        if len(part):
            total += len(part) / len(order) * abs(correct[part].mean() - confidence[part].mean())
    return float(total)


def _metrics(probabilities: np.ndarray, labels: np.ndarray, rank_of_class: np.ndarray) -> dict:
    metrics = classification_metrics(probabilities, labels)
    by_rank = [0.0] * len(rank_of_class)
    for c, rank in enumerate(rank_of_class):
        by_rank[int(rank)] = metrics["recall"][c]
    confidence = probabilities.max(axis=1)
    p_true = np.clip(probabilities[np.arange(len(labels)), labels], 1e-300, None)
    return metrics | {
        "recall_by_rank": by_rank,
        "head_recall": float(np.mean([by_rank[r] for r in HEAD_RANKS])),
        "tail_recall": float(np.mean([by_rank[r] for r in TAIL_RANKS])),
        "adaptive_ece": adaptive_calibration_error(probabilities, labels),
        "nll": float(-np.mean(np.log(p_true))),
        "overconfidence": float(confidence.mean() - metrics["accuracy"]),
        "reliability": reliability_bins(probabilities, labels),
    }


def run_one(run: tuple[LongTailTask, LongTailBudget, int, float, str, str]) -> dict:
    """Train one condition ``(task, budget, seed, imbalance, loss, alpha)`` and return its result row."""
    task, budget, seed, imbalance, loss_name, alpha_name = run
    data = task.sample(seed, imbalance)
    x_train, y_train = data["x_train"], data["y_train"]
    classes = len(data["rank_of_class"])
    alpha = class_balanced_alpha(y_train, classes) if alpha_name == "class-balanced" else None
    criterion, schedule = _criterion(loss_name, alpha, budget.steps)
    model = _model(task, budget, classes, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.learning_rate)
    order = torch.Generator().manual_seed(seed)
    batches_per_epoch = len(y_train) // budget.batch_size  # the last partial batch is dropped
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size must be <= the training set size {len(y_train)}. Got: {budget.batch_size}")
    curve, window, step = [], [], 0
    started = time.perf_counter()
    while step < budget.steps:
        permutation = torch.randperm(len(y_train), generator=order)
        for batch in range(min(batches_per_epoch, budget.steps - step)):
            index = permutation[batch * budget.batch_size : (batch + 1) * budget.batch_size]
            loss = criterion(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            step += 1
            window.append(loss.detach())
            if step % budget.log_every == 0 or step == budget.steps:
                curve.append([step, float(torch.stack(window).mean())])
                window = []
    train_s = time.perf_counter() - started
    with torch.no_grad():
        model.eval()
        train_accuracy = float((model(x_train).argmax(1) == y_train).double().mean())
        probabilities = torch.softmax(model(data["x_test"]).double(), dim=1).numpy()
    return {
        "imbalance": imbalance,
        "loss": loss_name,
        "alpha": alpha_name,
        "seed": seed,
        "schedule_state": schedule.state_dict() if schedule is not None else {"kind": "FLSD53", "config": {}},
        "alpha_values": alpha,
        "train_size": len(y_train),
        "train_accuracy": train_accuracy,
        "curve": curve,
        "metrics": _metrics(probabilities, data["y_test"].numpy(), data["rank_of_class"].numpy()),
        "train_s": round(train_s, 3),
    }


def long_tail_seeds(count: int | None = None, quick: bool = False) -> list[int]:
    """Seeds ``0 .. count - 1``; ``count`` defaults to :data:`DEFAULT_SEEDS` (:data:`QUICK_SEEDS` if ``quick``).

    Example:
        >>> long_tail_seeds(quick=True)
        [0, 1]
    """
    return seed_list(count if count is not None else (QUICK_SEEDS if quick else DEFAULT_SEEDS))


def run_long_tail(
    seeds: Sequence[int],
    *,
    task: LongTailTask = LongTailTask(),  # noqa: B008  (frozen dataclass: immutable default)
    budget: LongTailBudget = LongTailBudget(),  # noqa: B008
    losses: Iterable[str] | None = None,
    alphas: Iterable[str] | None = None,
    imbalances: Iterable[float] | None = None,
    jobs: int = 1,
    quick: bool = False,
    bar: bool = True,
    progress: Callable[[str], None] | None = None,
    executor: str = "local",
) -> dict:
    """Run every (imbalance, alpha, loss) condition for every seed; return the report document.

    Args:
        seeds: e.g. :func:`long_tail_seeds`; each draws the split, the class ranks, the weights and the batch order.
        task, budget: Default: :class:`LongTailTask`, :class:`LongTailBudget`.
        losses: names from :data:`LOSSES`; alphas: from :data:`ALPHAS`; imbalances: factors >= 1. Default: all
            (``quick``: :data:`QUICK`'s).
        jobs: worker processes (one torch thread each); the rows do not depend on it. Default: 1.
        quick: the command's ``--quick``: :data:`QUICK`'s conditions unless given (same task and budget).
        bar: a progress bar on stderr. progress: called with one line per finished run.
        executor: where the runs go (:func:`~focalbench.experiments.runs.map_runs`): ``local`` (``jobs`` processes
            here), ``dask-local`` or ``dask://HOST:PORT``; the rows do not depend on it. Default: ``local``.
    """
    from focalbench.experiments.long_tail_report import long_tail_document

    executor = parse_executor(executor)
    defaults = QUICK if quick else {"losses": tuple(LOSSES), "alphas": ALPHAS, "imbalances": IMBALANCES}
    losses = choose("losses", losses if losses is not None else defaults["losses"], list(LOSSES))
    alphas = choose("alphas", alphas if alphas is not None else defaults["alphas"], ALPHAS)
    imbalances = list(imbalances if imbalances is not None else defaults["imbalances"])
    for factor in imbalances:
        long_tail_counts(task.train_max, factor, 10)
    if not imbalances or len(set(imbalances)) != len(imbalances):
        raise ValueError(f"imbalances must be a non-empty list without repeats. Got: {imbalances!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of integers. Got: []")
    runs = [(task, budget, seed, factor, loss, alpha)
            for seed in seeds for factor in imbalances for alpha in alphas for loss in losses]  # fmt: skip

    def describe(row: dict) -> str:
        m = row["metrics"]
        return (f"seed {row['seed']} IF {row['imbalance']:g} alpha={row['alpha']} loss={row['loss']}: accuracy "
                f"{m['accuracy']:.4f}, tail recall {m['tail_recall']:.3f}, ECE {m['ece']:.4f} "
                f"({row['train_s']:.1f} s)")  # fmt: skip

    started = time.perf_counter()
    env = run_environment(1)  # records the one thread every run uses
    rows = map_runs(run_one, runs, jobs=jobs, threads=1, description="long-tail", progress=progress,
                    describe=describe, bar=bar, executor=executor)  # fmt: skip
    settings = {
        "experiment": "long-tail",
        "quick": quick,
        "seeds": seeds,
        "jobs": jobs,
        "threads": 1,
        "task": dataclasses.asdict(task),
        "budget": dataclasses.asdict(budget),
        "model": (f"CNN conv3x3 {budget.channels[0]} - maxpool - conv3x3 {budget.channels[1]} - maxpool - "
                  f"linear {budget.hidden} - linear 10, ReLU, Adam"),  # fmt: skip
        "train_counts": {str(f): long_tail_counts(task.train_max, f, 10) for f in imbalances},
        "losses": {name: LOSSES[name] for name in losses},
        "schedules": {name: SCHEDULES[name](budget.steps).state_dict() for name in losses if name in SCHEDULE_NAMES},
        "alphas": alphas,
        "class_balanced_beta": CLASS_BALANCED_BETA,
        "imbalances": imbalances,
        "ece_bins": ECE_BINS,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if executor != "local":  # recorded where the runs left this machine's process pool
        settings["executor"] = executor
    return long_tail_document(env, settings, rows)
