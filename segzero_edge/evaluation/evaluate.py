"""The evaluation loop: a segmenter over a dataset -> per-sample results and gIoU / cIoU (spec §7).

    from segzero_edge import Segmenter
    from segzero_edge.evaluation import evaluate, open_dataset

    with Segmenter("engines/segzero-7b") as seg:
        report = evaluate(seg, open_dataset("data/ReasonSeg_val"), limit=50)
    report.scores.giou, report.scores.ciou, report.parse_failure_rate

Per sample: the image and ground truth are read (an unreadable record is *skipped*: reported, not scored),
``segmenter.predict(image, text)`` runs, and its mask (the union of its objects' masks) is compared with the
ground truth at the original image size. A prediction whose answer could not be decoded (``found=False``, a
*parse failure*) or that raised is a miss (``metrics.sample_iou(None, gt)``). Where the ground truth has one
mask (or, in VisionReasoner's detection sets, one box) per object, the answer's boxes are matched to the
objects' boxes (``report.detection``: box precision and recall at IoU 0.5 after Hungarian matching).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import DatasetError, InputError
from ..sam2.host import mask_box
from ..types import Segmentation
from .datasets import EvalSample, open_dataset
from .metrics import (
    DetectionScores,
    EvalScores,
    SampleIoU,
    aggregate,
    box_iou,
    detection_scores,
    match_boxes,
    sample_iou,
)

log = logging.getLogger(__name__)


class Predictor(Protocol):
    """What ``evaluate`` needs: ``Segmenter`` or anything with its ``predict``."""

    def predict(self, image: np.ndarray, text: str) -> Segmentation: ...


@dataclass(frozen=True)
class SampleResult:
    """One evaluated sample (a line of the per-sample JSONL).

    Attributes:
        id, text, source: from the dataset.
        status: ``"ok"`` (answer decoded and segmented), ``"parse_failure"`` (no usable answer: a miss),
            ``"error"`` (``predict`` raised: a miss), ``"skipped"`` (unreadable record: not scored).
        iou: intersection / union as scored (None when skipped); intersection, union, gt_pixels,
            pred_pixels: pixel counts at the original image size.
        both_empty: prediction and ground truth both empty (dropped by ``drop_both_empty``).
        score: SAM2's predicted IoU; box, points: the prompt in original-image pixels.
        error: why the sample failed or was skipped.
        image_size: ``(width, height)``; latency_ms: ``predict`` wall time.
        raw_text: the generated text.
        n_pred_objects: the answer's objects; n_gt_objects, n_matched: ground-truth objects and matched boxes
            (None when the ground truth has no per-object masks).
        box_hit: VisionReasoner's "bbox AP" of the sample: 1.0 when one of the answer's boxes has IoU > 0.5 with
            the dataset's ``bbox``, else 0.0 (None when the dataset gives no box).
    """

    id: str
    text: str
    source: str
    status: str
    iou: float | None = None
    intersection: int = 0
    union: int = 0
    gt_pixels: int = 0
    pred_pixels: int = 0
    both_empty: bool = False
    score: float = 0.0
    box: tuple[float, ...] | None = None
    points: tuple[tuple[float, float], ...] = ()
    error: str | None = None
    image_size: tuple[int, int] | None = None
    latency_ms: float = 0.0
    raw_text: str = ""
    n_pred_objects: int = 0
    n_gt_objects: int | None = None
    n_matched: int | None = None
    box_hit: float | None = None

    def counts(self) -> SampleIoU | None:
        """The metric counts, or None for a skipped sample."""
        if self.status == "skipped":
            return None
        return SampleIoU(self.intersection, self.union, self.gt_pixels, self.pred_pixels, failed=self.status != "ok")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EvalReport:
    """Scores and per-sample results of ``evaluate``.

    Attributes:
        scores: gIoU / cIoU over the scored samples (``metrics.EvalScores``).
        samples: every sample, in dataset order, skipped ones included.
        n_parse_failures: samples whose answer could not be decoded; n_errors: samples whose predict raised;
        n_skipped: unreadable records (not in ``scores``).
        wall_s: seconds for the whole loop. dataset: ``EvalDataset.describe()`` (or {}).
        detection: box precision / recall over the samples with per-object ground truth (None without).
        box_hit_rate: mean ``box_hit`` over the samples with a ground-truth box (VisionReasoner's "bbox AP"),
            None without.
    """

    scores: EvalScores
    samples: tuple[SampleResult, ...]
    n_parse_failures: int
    n_errors: int
    n_skipped: int
    wall_s: float
    dataset: Mapping[str, Any] = field(default_factory=dict)
    detection: DetectionScores | None = None
    box_hit_rate: float | None = None

    @property
    def parse_failure_rate(self) -> float:
        """Parse failures / scored samples."""
        n = self.scores.n_samples
        return self.n_parse_failures / n if n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The summary (no per-sample rows), JSON-ready."""
        s = self.scores
        return {
            "giou": s.giou,
            "ciou": s.ciou,
            "n_samples": s.n_samples,
            "n_scored": s.n_scored,
            "n_both_empty": s.n_both_empty,
            "dropped_both_empty": s.dropped_both_empty,
            "n_failed": s.n_failed,
            "failure_rate": s.failure_rate,
            "n_parse_failures": self.n_parse_failures,
            "parse_failure_rate": self.parse_failure_rate,
            "n_errors": self.n_errors,
            "n_skipped": self.n_skipped,
            "skipped_reasons": _reasons(self.samples),
            "wall_s": self.wall_s,
            "dataset": dict(self.dataset),
            "detection": asdict(self.detection) if self.detection is not None else None,
            "box_hit_rate": self.box_hit_rate,
        }


def _reasons(samples: Iterable[SampleResult]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        if s.status == "skipped":
            key = (s.error or "").split(" (")[0]
            out[key] = out.get(key, 0) + 1
    return out


def evaluate_sample(segmenter: Predictor, sample: EvalSample) -> SampleResult:
    """Load, predict and score one sample (never raises on a bad record or a failing prediction)."""
    try:
        image, gt, gt_objects = sample.load_objects()
    except (DatasetError, InputError) as exc:
        return SampleResult(sample.id, sample.text, sample.source, "skipped", error=str(exc).split("\n")[0])
    size = (int(image.shape[1]), int(image.shape[0]))
    t0 = time.perf_counter()
    try:
        res = segmenter.predict(image, sample.text)
    except Exception as exc:  # the official evaluation counts any exception as a miss; so do we
        log.warning("sample %s: predict raised %s: %s", sample.id, type(exc).__name__, exc)
        counts = sample_iou(None, gt)
        return SampleResult(
            sample.id,
            sample.text,
            sample.source,
            "error",
            iou=0.0,
            union=counts.union,
            gt_pixels=counts.gt_pixels,
            error=f"{type(exc).__name__}: {exc}",
            image_size=size,
            latency_ms=(time.perf_counter() - t0) * 1e3,
        )
    latency = (time.perf_counter() - t0) * 1e3
    counts = sample_iou(res.mask if res.found else None, gt)
    pred_boxes = [o.prompt_box for o in res.objects if o.prompt_box is not None]
    n_gt = n_matched = None
    gt_boxes = None
    if gt_objects is not None:
        gt_boxes = [b for b in (mask_box(m) for m in gt_objects) if b is not None]
    elif sample.gt_boxes is not None:
        gt_boxes = list(sample.gt_boxes)
    if gt_boxes is not None:
        n_gt, n_matched = len(gt_boxes), match_boxes(pred_boxes, gt_boxes)
    box_hit = None
    if sample.gt_box is not None:
        box_hit = float(any(box_iou(b, sample.gt_box) > 0.5 for b in pred_boxes))
    # A decoded answer whose mask is empty (or whose box lies outside the image) is found=False but no parse
    # failure: it is scored as the empty prediction it is.
    decoded = res.found or (res.answer is not None and res.answer.ok)
    return SampleResult(
        sample.id,
        sample.text,
        sample.source,
        "ok" if decoded else "parse_failure",
        iou=counts.iou,
        intersection=counts.intersection,
        union=counts.union,
        gt_pixels=counts.gt_pixels,
        pred_pixels=counts.pred_pixels,
        both_empty=counts.both_empty,
        score=float(res.score),
        box=tuple(float(v) for v in res.box) if res.box is not None else None,
        points=tuple((float(x), float(y)) for x, y in res.points),
        error=res.error,
        image_size=size,
        latency_ms=latency,
        raw_text=res.raw_text,
        n_pred_objects=len(pred_boxes),
        n_gt_objects=n_gt,
        n_matched=n_matched,
        box_hit=box_hit,
    )


def evaluate(
    segmenter: Predictor,
    dataset: Iterable[EvalSample] | str | os.PathLike,
    *,
    limit: int | None = None,
    drop_both_empty: bool = False,
    on_sample: Callable[[SampleResult], None] | None = None,
) -> EvalReport:
    """gIoU / cIoU of ``segmenter`` on ``dataset`` (reference/segzero_spec.md §7).

    Args:
        segmenter: a ``Segmenter`` (or anything with ``predict(image, text) -> Segmentation``).
        dataset: ``EvalSample``s, e.g. ``open_dataset(path, layout, split=...)``, or a dataset path (opened
            with ``open_dataset(path)``, layout detected).
        limit: evaluate only the first ``limit`` samples (skipped records count towards it).
        drop_both_empty: drop samples whose prediction and ground truth are both empty, as the official
            script does (by default they are scored 1.0 and counted in ``n_both_empty``).
        on_sample: called with each ``SampleResult`` as soon as it is done (progress, JSONL streaming).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit must be an int >= 0 or None, got {limit!r}")
    if isinstance(dataset, str | os.PathLike):
        dataset = open_dataset(dataset)
    t0 = time.perf_counter()
    results: list[SampleResult] = []
    for sample in dataset:
        if limit is not None and len(results) >= limit:
            break
        result = evaluate_sample(segmenter, sample)
        results.append(result)
        if on_sample is not None:
            on_sample(result)
    counts = [c for c in (r.counts() for r in results) if c is not None]
    detections = [(r.n_pred_objects, r.n_gt_objects, r.n_matched) for r in results if r.n_gt_objects is not None]
    hits = [r.box_hit for r in results if r.box_hit is not None]
    return EvalReport(
        scores=aggregate(counts, drop_both_empty=drop_both_empty),
        samples=tuple(results),
        n_parse_failures=sum(r.status == "parse_failure" for r in results),
        n_errors=sum(r.status == "error" for r in results),
        n_skipped=sum(r.status == "skipped" for r in results),
        wall_s=time.perf_counter() - t0,
        dataset=dataset.describe() if hasattr(dataset, "describe") else {},
        detection=detection_scores(detections) if detections else None,
        box_hit_rate=float(np.mean(hits)) if hits else None,
    )
