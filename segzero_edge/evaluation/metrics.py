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
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


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
