"""gIoU and cIoU as Seg-Zero's evaluation computes them (reference/segzero_spec.md §7).

* gIoU = mean over samples of intersection / union.
* cIoU = sum of intersections / sum of unions.
* A failed prediction (undecodable answer, any error) is a miss: intersection 0, union = GT pixels,
  IoU 0, also when the ground truth is empty (the official script keeps such a sample with I = U = 0 and
  scores it 0).
* The official script silently drops samples whose prediction and ground truth are both empty (its IoU
  helper returns a bare 0 that the caller cannot unpack). We count them explicitly instead, as a
  perfect score (IoU 1: nothing to find, nothing found); ``drop_both_empty=True`` reproduces the
  official numbers.
* Multi-object answers (VisionReasoner) are scored the way its evaluation does: the union of the objects'
  masks against the union of the ground truth. Where the ground truth has one mask per object, the answer's
  boxes are also matched to the objects' boxes (``match_boxes``: Hungarian matching on IoU, a pair counts
  at IoU >= 0.5) for box precision and recall (``detection_scores``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import missing_extra


@dataclass(frozen=True)
class SampleIoU:
    """Intersection and union of one sample, in pixels.

    Attributes:
        intersection, union: pixel counts of pred AND gt, pred OR gt.
        gt_pixels, pred_pixels: pixel counts of each mask.
        failed: the prediction failed (counted as an empty prediction, i.e. a miss).
    """

    intersection: int
    union: int
    gt_pixels: int
    pred_pixels: int
    failed: bool = False

    @property
    def both_empty(self) -> bool:
        """A prediction was made, and it and the ground truth are both empty."""
        return self.union == 0 and not self.failed

    @property
    def iou(self) -> float:
        """I/U; 1.0 when both masks are empty; 0.0 for a failed prediction (a miss)."""
        if self.failed:
            return 0.0
        return 1.0 if self.union == 0 else self.intersection / self.union


def sample_iou(pred: np.ndarray | None, gt: np.ndarray) -> SampleIoU:
    """IoU counts of one prediction against its ground truth.

    Args:
        pred: ``(H, W)`` bool mask, or None when the prediction failed (a miss).
        gt: ``(H, W)`` ground-truth mask (any dtype; non-zero is foreground, as in ReasonSeg, where
            "ignore" regions count as target).
    """
    gt = np.asarray(gt).astype(bool)
    if pred is None:
        n = int(gt.sum())
        return SampleIoU(0, n, n, 0, failed=True)
    pred = np.asarray(pred).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    inter = int(np.logical_and(pred, gt).sum())
    union = int(np.logical_or(pred, gt).sum())
    return SampleIoU(inter, union, int(gt.sum()), int(pred.sum()))


@dataclass(frozen=True)
class EvalScores:
    """Aggregated scores.

    Attributes:
        giou, ciou: as defined in the module docstring, in [0, 1].
        n_samples: samples seen; n_scored: samples in the averages.
        n_both_empty: samples with an (unfailed) empty prediction and an empty ground truth (dropped when
            ``dropped_both_empty``).
        n_failed: failed predictions (counted as misses); failure_rate = n_failed / n_samples.
    """

    giou: float
    ciou: float
    n_samples: int
    n_scored: int
    n_both_empty: int
    n_failed: int
    dropped_both_empty: bool

    @property
    def failure_rate(self) -> float:
        return self.n_failed / self.n_samples if self.n_samples else 0.0


def aggregate(samples: Iterable[SampleIoU], *, drop_both_empty: bool = False) -> EvalScores:
    """gIoU / cIoU over ``samples`` (``drop_both_empty=True`` reproduces the official script)."""
    samples = list(samples)
    both_empty = sum(s.both_empty for s in samples)
    scored = [s for s in samples if not (drop_both_empty and s.both_empty)]
    ious = [s.iou for s in scored]
    inter = sum(s.intersection for s in scored)
    union = sum(s.union for s in scored)
    return EvalScores(
        giou=float(np.mean(ious)) if ious else 0.0,
        ciou=inter / union if union else 0.0,
        n_samples=len(samples),
        n_scored=len(scored),
        n_both_empty=both_empty,
        n_failed=sum(s.failed for s in samples),
        dropped_both_empty=drop_both_empty,
    )


# --------------------------------------------------------------------------------------------------
# Multi-object answers: boxes matched to ground-truth objects
# --------------------------------------------------------------------------------------------------


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``(x1, y1, x2, y2)`` boxes as areas (pixel edges, no +1); 0.0 when both are empty."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def match_boxes(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]], threshold: float = 0.5) -> int:
    """Predicted boxes matched one to one to ground-truth boxes by the Hungarian algorithm on IoU
    (``scipy.optimize.linear_sum_assignment``, maximising the summed IoU); returns how many matched pairs
    reach ``threshold`` (true positives)."""
    if not len(pred) or not len(gt):
        return 0
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise missing_extra("per-object box matching (scipy)", "eval", cause=exc) from exc
    ious = np.array([[box_iou(p, g) for g in gt] for p in pred], dtype=np.float64)
    rows, cols = linear_sum_assignment(-ious)
    return int(np.sum(ious[rows, cols] >= threshold))


@dataclass(frozen=True)
class DetectionScores:
    """Per-object box detection over the samples that have per-object ground truth.

    Attributes:
        precision: matched predicted boxes / predicted boxes (micro, over all samples).
        recall: matched ground-truth objects / ground-truth objects.
        n_samples: samples with per-object ground truth; n_pred, n_gt, n_matched: the counts.
        threshold: the IoU a matched pair needs.
    """

    precision: float
    recall: float
    n_samples: int
    n_pred: int
    n_gt: int
    n_matched: int
    threshold: float = 0.5


def detection_scores(counts: Iterable[tuple[int, int, int]], threshold: float = 0.5) -> DetectionScores:
    """``DetectionScores`` from per-sample ``(n_pred, n_gt, n_matched)``."""
    counts = list(counts)
    n_pred = sum(c[0] for c in counts)
    n_gt = sum(c[1] for c in counts)
    n_matched = sum(c[2] for c in counts)
    return DetectionScores(
        precision=n_matched / n_pred if n_pred else 0.0,
        recall=n_matched / n_gt if n_gt else 0.0,
        n_samples=len(counts),
        n_pred=n_pred,
        n_gt=n_gt,
        n_matched=n_matched,
        threshold=threshold,
    )
