"""Evaluation and measurement: datasets, gIoU / cIoU as Seg-Zero defines them, the evaluation loop, latency.

Everything here is numpy + PIL (pyarrow / datasets imported lazily for parquet / ``save_to_disk`` data).
"""

from .datasets import LAYOUTS, EvalDataset, EvalSample, detect_layout, open_dataset
from .evaluate import EvalReport, SampleResult, evaluate, evaluate_sample
from .metrics import EvalScores, SampleIoU, aggregate, sample_iou

__all__ = [
    "LAYOUTS",
    "EvalDataset",
    "EvalReport",
    "EvalSample",
    "EvalScores",
    "SampleIoU",
    "SampleResult",
    "aggregate",
    "detect_layout",
    "evaluate",
    "evaluate_sample",
    "open_dataset",
    "sample_iou",
]
