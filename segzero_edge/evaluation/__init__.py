"""Evaluation: ReasonSeg / RefCOCO metrics (gIoU, cIoU) as Seg-Zero defines them."""

from .metrics import EvalScores, SampleIoU, aggregate, sample_iou

__all__ = ["EvalScores", "SampleIoU", "aggregate", "sample_iou"]
