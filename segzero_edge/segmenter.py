"""``Segmenter``: the two-stage Seg-Zero pipeline, the product a robot's control code calls.

    seg = Segmenter("engines/segzero-7b-int4")
    res = seg.predict(frame, "the cup the robot should pick up")
    res.mask            # (H, W) bool at the frame's size
    res.box, res.points # original-image pixels; res.found is False when the answer was unusable

Per request: the frame is normalised to ``(H, W, 3)`` uint8 RGB; SAM2's image encoder runs on a worker
thread *while* the reasoning model generates (``overlap=True``), so a request costs about
max(reasoning, encoding) + mask decoding + pre/post on a GPU; the answer is decoded into original-image
pixels, its box reordered and clipped, and SAM2 decodes the mask from the box and the two points.

Caching: SAM2 features are kept in an LRU keyed by image content (and the reasoner keeps the vision
embeddings), so several questions about the same frame encode it once.

Backends: ONNX Runtime (``"ort"``), TensorRT for SAM2 (``"trt"``), or the PyTorch reference (``"torch"``:
``backends.torch_reasoner`` + ``backends.torch_sam2``, loaded from the engine's source checkpoints, see
``backends.sources``). Each stage object has the same interface whichever backend runs it.

Threads: ``predict``, ``reason`` and ``segment`` may be called from several threads. SAM2 sessions
run concurrently; the reasoner holds a KV cache, so generations are serialised by a lock (one reasoning
at a time per ``Segmenter``; create one ``Segmenter`` per thread for parallel generations, at the cost
of one model copy each).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .cache import LRUCache
from .errors import ConfigError, InputError
from .image import Color, ImageLike, image_key, load_image
from .manifest import Verify, load_manifest
from .reasoner import GenerationOptions, Reasoner
from .sam2 import Sam2Features, Sam2Runtime
from .sam2.contract import MASK_MODES
from .types import Answer, Segmentation

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ort", "trt", "torch")
#: ``torch_weights="auto"``: the reasoner precision of the engine -> the optimum-quanto weights closest to it.
TORCH_WEIGHTS = {"int4": "int4", "int8": "int8"}
#: Tokens kept for ``</think><answer>{...}</answer>`` when the thinking budget is derived from
#: ``max_new_tokens``: the longest Seg-Zero answer with one token per digit is about 60 tokens.
ANSWER_RESERVE = 80


@dataclass(frozen=True)
class SegmenterOptions:
    """Per-request settings (validated). Any of them can be overridden per call as keyword arguments.

    Attributes:
        max_new_tokens: most generated tokens (Seg-Zero: 1024).
        constrained: steer generation so the answer always parses (token-level answer constraint).
        thinking_budget: with ``constrained``, most tokens of thinking before ``</think><answer>`` is
            forced. None: ``max_new_tokens - ANSWER_RESERVE``, so a constrained answer always fits.
        do_sample, temperature, top_p, top_k, seed: sampling (greedy by default, as Seg-Zero evaluates).
        mask_mode: ``"best"`` (Seg-Zero: highest predicted IoU of SAM2's 3 multimask outputs) or
            ``"single"`` (single-mask output with SAM2's stability fallback).
        max_text_length: longest instruction accepted, in characters.
        overlap: encode the image with SAM2 while the reasoner generates.
    """

    max_new_tokens: int = 1024
    constrained: bool = True
    thinking_budget: int | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    mask_mode: str = "best"
    max_text_length: int = 2000
    overlap: bool = True

    def __post_init__(self) -> None:
        if self.mask_mode not in MASK_MODES:
            raise ConfigError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if (
            isinstance(self.max_text_length, bool)
            or not isinstance(self.max_text_length, int)
            or self.max_text_length < 1
        ):
            raise ConfigError(f"max_text_length must be an int >= 1, got {self.max_text_length!r}")
        self.generation_options()  # validates the generation fields (ConfigError naming the field)

    def generation_options(self) -> GenerationOptions:
        budget = self.thinking_budget
        if budget is None and self.constrained:
            budget = max(0, self.max_new_tokens - ANSWER_RESERVE)
        return GenerationOptions(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            seed=self.seed,
            constrained=self.constrained,
            thinking_budget=budget if self.constrained else None,
        )

    def updated(self, **overrides: Any) -> SegmenterOptions:
        """A copy with ``overrides`` applied; unknown names raise ``ConfigError`` listing the valid ones."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown}", hint=f"valid options: {', '.join(sorted(names))}")
        return replace(self, **overrides) if overrides else self


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class Segmenter:
    """Reasoning segmentation from an engine directory (``segzero-edge export``).

    Args:
        engine_dir: engine directory holding the ``reasoner`` and ``sam2`` components.
        device: ``"auto"`` (CUDA when ONNX Runtime can use it, else CPU), ``"cpu"``, ``"cuda"``.
        backend: ``"ort"`` (ONNX Runtime), ``"trt"`` (SAM2 from the TensorRT engines built for this
            GPU by ``segzero-edge build``; the reasoner on ONNX Runtime), ``"auto"`` (``"trt"`` when
            such engines and TensorRT are present, else ``"ort"``), or ``"torch"``: the reference
            backend, both stages in PyTorch from the *source checkpoints* of the engine (transformers
            ``generate`` with the same prompt, answer constraint and stopping; the official ``sam2``
            model with SAM2ImagePredictor's pre/postprocessing). Needs the ``torch`` extra (``quant``
            for int4/int8 weights) and the checkpoints: see ``reasoner_checkpoint``/``sam2_checkpoint``.
            ``device`` then names a torch device (``"auto"``: CUDA when torch sees one).
        options: default ``SegmenterOptions``; keyword arguments override single fields.
        threads: CPU threads per ONNX Runtime session (None: ONNX Runtime's default). With
            ``backend="torch"``: ``torch.set_num_threads`` (process-wide).
        sam2_threads: CPU threads of the SAM2 sessions only (None: ``threads``). On a small CPU the
            overlapped encoder competes with the reasoner for cores (see benchmarks/bench_segmenter.py).
        cache_size: frames whose SAM2 features and vision embeddings are kept (0 disables).
        verify: how the engine files are checked at load (``"full"`` hashes every file; with
            ``backend="torch"`` also the source checkpoints against the manifest's sha256).
        reasoner_checkpoint: ``backend="torch"`` only: the Hugging Face Qwen2.5-VL directory the
            engine's reasoner was exported from. Default: the source path recorded in ``manifest.json``
            (``segzero_edge.backends.sources``); a ``CheckpointError`` says what to pass when it is gone.
        sam2_checkpoint: ``backend="torch"`` only: the official SAM2 ``.pt`` (default: the recorded one).
        torch_weights: ``backend="torch"`` only: reasoner weights ``"fp32"``, ``"int8"``, ``"int4"``
            (optimum-quanto, weight-only) or ``"auto"`` (int4/int8 when the engine's decoder is, else fp32).

    Raises:
        ManifestError / EngineFileError: missing, incomplete or tampered engine directory.
        EngineIncompatibleError: exported by another segzero-edge / prompt version, or built for another device.
        BackendUnavailableError: onnxruntime (or TensorRT for ``backend="trt"``) is not installed.
    """

    def __init__(
        self,
        engine_dir: str | Path,
        device: str = "auto",
        backend: str = "auto",
        *,
        options: SegmenterOptions | None = None,
        threads: int | None = None,
        sam2_threads: int | None = None,
        cache_size: int = 4,
        verify: Verify = "full",
        reasoner_checkpoint: str | Path | None = None,
        sam2_checkpoint: str | Path | None = None,
        torch_weights: str = "auto",
        **overrides: Any,
    ) -> None:
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
        if backend != "torch" and (reasoner_checkpoint is not None or sam2_checkpoint is not None):
            raise InputError(
                "reasoner_checkpoint/sam2_checkpoint are for backend='torch'",
                hint="pass backend='torch', or drop the checkpoint arguments",
            )
        self.engine_dir = Path(engine_dir)
        self.backend_name = backend
        self.options = (options or SegmenterOptions()).updated(**overrides)
        self.manifest = load_manifest(self.engine_dir, verify=verify)
        self.manifest.component("reasoner")
        self.manifest.component("sam2")
        sam2_threads = threads if sam2_threads is None else sam2_threads
        if backend == "torch":
            self.sam2, self.reasoner = self._torch_stages(
                device, threads, verify, reasoner_checkpoint, sam2_checkpoint, torch_weights
            )
        else:
            self.sam2 = Sam2Runtime(
                self.engine_dir, manifest=self.manifest, device=device, backend=backend, threads=sam2_threads
            )
            self.reasoner = Reasoner(
                self.manifest,
                engine_dir=self.engine_dir,
                device=device,
                threads=threads,
                verify="none",
                image_cache_size=cache_size,
            )
        self._features: LRUCache[Sam2Features] = LRUCache(cache_size)
        self._reasoner_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="segzero-sam2")
        log.info("segmenter ready: %s (sam2 %s backend)", self.engine_dir, self.sam2.backend.name)

    def _torch_stages(
        self, device: str, threads: int | None, verify: Verify, reasoner_checkpoint, sam2_checkpoint, torch_weights: str
    ):
        """Both stages on torch from the engine's source checkpoints (``backends.sources``)."""
        from .backends.sources import resolve_checkpoint
        from .backends.torch_reasoner import QUANTO_WEIGHTS, TorchReasoner
        from .backends.torch_sam2 import TorchSam2, torch_device

        if torch_weights == "auto":
            torch_weights = TORCH_WEIGHTS.get(str(self.manifest.component("reasoner").get("weights")), "fp32")
        if torch_weights not in QUANTO_WEIGHTS:
            raise InputError(
                f"unknown torch_weights {torch_weights!r}", hint=f"use auto or one of {', '.join(QUANTO_WEIGHTS)}"
            )
        sam2 = TorchSam2(
            self.engine_dir,
            manifest=self.manifest,
            device=device,
            checkpoint=sam2_checkpoint,
            threads=threads,
            verify=verify,
        )
        model_dir = resolve_checkpoint(self.manifest, "reasoner", reasoner_checkpoint, verify=verify)
        reasoner = TorchReasoner(model_dir, device=torch_device(device), weights=torch_weights)
        return sam2, reasoner

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the encoder worker threads (the object is unusable afterwards)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------
    def _check_text(self, text: object, options: SegmenterOptions) -> str:
        if not isinstance(text, str):
            raise InputError(
                f"text must be a str, got {type(text).__name__}",
                hint="pass the instruction, e.g. 'the cup the robot should pick up'",
            )
        if not text.strip():
            raise InputError("text is empty", hint="describe the object to segment")
        if len(text) > options.max_text_length:
            raise InputError(
                f"text has {len(text)} characters, more than max_text_length={options.max_text_length}",
                hint="shorten the instruction or raise max_text_length",
            )
        return text

    def _encode(self, rgb: np.ndarray, key: str) -> tuple[Sam2Features, bool]:
        return self._features.get_or_compute(key, lambda: self.sam2.encode(rgb))

    def _start_encode(self, rgb: np.ndarray, key: str, overlap: bool) -> Callable[[], tuple[Sam2Features, bool]]:
        if overlap:
            future: Future = self._pool.submit(self._encode, rgb, key)
            return future.result
        return lambda: self._encode(rgb, key)

    def _reason(self, rgb: np.ndarray, text: str, options: SegmenterOptions, on_text: Callable[[str], None] | None):
        with self._reasoner_lock:
            t0 = time.perf_counter()
            result = self.reasoner.generate(rgb, text, options.generation_options(), on_text=on_text)
            return result, _ms(t0)

    # -- public ------------------------------------------------------------------------------------
    def predict(
        self,
        image: ImageLike,
        text: str,
        *,
        color: Color = "rgb",
        on_text: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> Segmentation:
        """Segment the object ``text`` refers to.

        Args:
            image: a path, a PIL image, or an ``(H, W, 3)`` uint8 array (RGB; ``color="bgr"`` for OpenCV
                frames; ``HxW`` grayscale and ``HxWx4`` are converted).
            text: the instruction, e.g. ``"the cup the robot should pick up"``.
            on_text: called with each new piece of generated text (streaming).
            **overrides: ``SegmenterOptions`` fields for this call only.

        Returns:
            ``Segmentation``: ``mask`` ``(H, W)`` bool; ``found=False`` (empty mask, ``error`` says why)
            when the model's answer cannot be used. Never raises on model output.

        Raises:
            InputError: bad image or text. ConfigError: bad option override.
        """
        t_start = time.perf_counter()
        options = self.options.updated(**overrides)
        text = self._check_text(text, options)
        rgb = load_image(image, color=color)
        key = image_key(rgb)
        t_load = _ms(t_start)
        features = self._start_encode(rgb, key, options.overlap)
        reasoned, t_reason = self._reason(rgb, text, options, on_text)
        answer = reasoned.answer()
        t0 = time.perf_counter()
        feats, hit = features()
        t_wait = _ms(t0)
        timings = {
            "load": t_load,
            **{k: v for k, v in reasoned.timings_ms.items() if k != "total"},
            "reasoning": t_reason,
            "sam2_wait": t_wait,
        }
        if not hit:
            timings.update({f"sam2_{k}": v for k, v in feats.timings_ms.items()})
        return self._finish(rgb, answer, feats, options, timings, t_start, raw_text=reasoned.text)

    def reason(
        self,
        image: ImageLike,
        text: str,
        *,
        color: Color = "rgb",
        on_text: Callable[[str], None] | None = None,
        **overrides: Any,
    ) -> Answer:
        """Only the reasoning stage: the decoded ``Answer`` (box and points in original-image pixels)."""
        options = self.options.updated(**overrides)
        text = self._check_text(text, options)
        rgb = load_image(image, color=color)
        reasoned, _ = self._reason(rgb, text, options, on_text)
        return reasoned.answer()

    def segment(
        self,
        image: ImageLike,
        *,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        color: Color = "rgb",
        **overrides: Any,
    ) -> Segmentation:
        """Only the SAM2 stage, from a box ``(x1, y1, x2, y2)`` and/or points ``[(x, y), ...]`` in
        original-image pixels (labels 1 = foreground, 0 = background; default all foreground)."""
        t_start = time.perf_counter()
        options = self.options.updated(**overrides)
        if box is None and not points:
            raise InputError("segment() needs a box, points, or both")
        rgb = load_image(image, color=color)
        feats, hit = self._encode(rgb, image_key(rgb))
        timings = {} if hit else {f"sam2_{k}": v for k, v in feats.timings_ms.items()}
        h, w = rgb.shape[:2]
        if box is not None:
            box = _clip_box(box, w, h)
        pts = tuple((float(x), float(y)) for x, y in (points or ()))
        result = self.sam2.decode(feats, boxes=box, points=pts or None, labels=labels, mask_mode=options.mask_mode)
        timings.update({f"sam2_{k}": v for k, v in result.timings_ms.items()})
        timings["total"] = _ms(t_start)
        return Segmentation(
            mask=result.masks[0], found=True, box=box, points=pts, score=float(result.scores[0]), timings_ms=timings
        )

    def _finish(
        self,
        rgb: np.ndarray,
        answer: Answer,
        feats: Sam2Features,
        options: SegmenterOptions,
        timings: dict[str, float],
        t_start: float,
        raw_text: str,
    ) -> Segmentation:
        h, w = rgb.shape[:2]
        if not answer.ok or answer.box is None:
            timings["total"] = _ms(t_start)
            return Segmentation(
                mask=np.zeros((h, w), bool),
                found=False,
                reasoning=answer.think,
                raw_text=raw_text,
                timings_ms=timings,
                answer=answer,
                error=answer.error or "the answer has no box",
            )
        result = self.sam2.decode(feats, boxes=answer.box, points=answer.points or None, mask_mode=options.mask_mode)
        timings.update({f"sam2_{k}": v for k, v in result.timings_ms.items()})
        timings["total"] = _ms(t_start)
        return Segmentation(
            mask=result.masks[0],
            found=True,
            box=answer.box,
            points=answer.points,
            score=float(result.scores[0]),
            reasoning=answer.think,
            raw_text=raw_text,
            timings_ms=timings,
            answer=answer,
        )


def _clip_box(box: Sequence[float], w: int, h: int) -> tuple[float, float, float, float]:
    """Reorder corners and clip to the image; raise on non-finite or wrongly sized boxes."""
    arr = np.asarray(box, dtype=np.float64).reshape(-1)
    if arr.size != 4 or not np.isfinite(arr).all():
        raise InputError(f"box must be 4 finite numbers (x1, y1, x2, y2), got {box!r}")
    x1, x2 = sorted((float(np.clip(arr[0], 0, w)), float(np.clip(arr[2], 0, w))))
    y1, y2 = sorted((float(np.clip(arr[1], 0, h)), float(np.clip(arr[3], 0, h))))
    return (x1, y1, x2, y2)
