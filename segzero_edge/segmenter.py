"""``Segmenter``: the two-stage Seg-Zero pipeline, the product a robot's control code calls.

    seg = Segmenter("engines/segzero-7b-int4")
    res = seg.predict(frame, "the cup the robot should pick up")
    res.mask            # (H, W) bool at the frame's size
    res.box, res.points # original-image pixels; res.found is False when the answer was unusable

Per request: the frame is loaded once (``frame.Frame``: ``(H, W, 3)`` uint8 RGB and its content key); SAM2's
image encoder runs on a worker thread *while* the reasoning model generates (``overlap=True``), so a
request costs about max(reasoning, encoding) + mask decoding + pre/post on a GPU; the answer is decoded into
original-image pixels, its box reordered and clipped, and SAM2 decodes the mask from the box and the points.

Components: ``ReasonerPipeline`` (``segzero_edge.reasoner``) and ``Sam2Pipeline`` (``segzero_edge.sam2``),
each over its backend; the ``Segmenter`` composes them and never reaches inside one. One
``SessionFactory`` (``segzero_edge.ort``) serves every ONNX Runtime graph; one ``FrameCache`` holds each
recent frame's SAM2 features and vision embeddings, so several questions about one frame encode it once.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .answer import EMPTY_ANSWER
from .errors import InputError, ManifestError
from .frame import Color, Frame, FrameCache, ImageLike
from .manifest import Verify, load_manifest
from .options import SegmenterOptions
from .ort import SessionFactory
from .prompt import check_text
from .reasoner import ReasonerPipeline, ReasonerResult
from .sam2 import Sam2Features, Sam2Pipeline
from .sam2.host import box_outside, clip_box, point_pairs
from .sam2.objects import Prompt, segment_objects
from .types import Answer, Segmentation

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ort", "trt", "torch")


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class Segmenter:
    """Reasoning segmentation from an engine directory (``segzero-edge export``).

    Args:
        engine_dir: engine directory holding the ``reasoner`` and/or ``sam2`` components (``predict`` needs
            both; ``segment`` needs SAM2 only; ``reason`` the reasoner only).
        device: ``"auto"`` (CUDA when ONNX Runtime can use it, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        backend: ``"ort"`` (ONNX Runtime), ``"trt"`` (SAM2 from the TensorRT engines built for this
            GPU by ``segzero-edge build``; the reasoner on ONNX Runtime), ``"auto"`` (``"trt"`` when
            such engines and TensorRT are present, else ``"ort"``), or ``"torch"``: the reference
            backends, both stages in PyTorch from the *source checkpoints* of the engine (transformers'
            Qwen2.5-VL as the reasoner's step function; the official ``sam2`` model with
            SAM2ImagePredictor's pre/postprocessing), run by the same pipelines. Needs the ``torch`` extra
            (``quant`` for int4/int8 weights) and the checkpoints: see ``reasoner_checkpoint`` /
            ``sam2_checkpoint``. ``device`` then names a torch device (``"auto"``: CUDA when torch sees one).
        options: default ``SegmenterOptions``; keyword arguments override single fields (any of
            ``SegmenterOptions.names()``).
        threads: CPU threads per ONNX Runtime session (None: ONNX Runtime's default). With
            ``backend="torch"``: ``torch.set_num_threads`` (process-wide).
        sam2_threads: CPU threads of the SAM2 sessions only (None: ``threads``). On a small CPU the
            overlapped encoder competes with the reasoner for cores (see benchmarks/bench_segmenter.py).
        cache_size: frames whose SAM2 features and vision embeddings are kept (0 disables).
        verify: how the engine files are checked at load (``"full"`` hashes every file; with
            ``backend="torch"`` also the source checkpoints against the manifest's sha256).
        reasoner_checkpoint: ``backend="torch"`` only: the Hugging Face Qwen2.5-VL directory the
            engine's reasoner was exported from. Default: the source path recorded in ``manifest.json``
            (``segzero_edge.reference.sources``); a ``CheckpointError`` says what to pass when it is gone.
        sam2_checkpoint: ``backend="torch"`` only: the official SAM2 ``.pt`` (default: the recorded one).
        torch_weights: ``backend="torch"`` only: reasoner weights ``"fp32"``, ``"int8"``, ``"int4"``
            (optimum-quanto, weight-only) or ``"auto"`` (int4/int8 when the engine's decoder is, else fp32).
        lens_context: LENS engines: the context graph variant (``"fp32"``, ``"int8"``, ``"int4"``; default:
            the engine's). LENS masks come from the reasoner's hidden states (``segzero_edge.lens``), not
            from the answer's box.

    Raises:
        ManifestError / EngineFileError: missing, incomplete or tampered engine directory.
        EngineIncompatibleError: exported by another segzero-edge / prompt version, or built for another device.
        BackendUnavailableError: onnxruntime (or TensorRT for ``backend="trt"``, or a GPU for an explicit GPU
            device) is not available.
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
        lens_context: str | None = None,
        **overrides: Any,
    ) -> None:
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
        torch_args = reasoner_checkpoint is not None or sam2_checkpoint is not None or torch_weights != "auto"
        if backend != "torch" and torch_args:
            raise InputError(
                "reasoner_checkpoint/sam2_checkpoint/torch_weights are for backend='torch'",
                hint="pass backend='torch', or drop those arguments",
            )
        self.engine_dir = Path(engine_dir)
        self.backend_name = backend
        self.options = (options or SegmenterOptions()).updated(**overrides)
        self._cache = FrameCache(cache_size)
        self.manifest = load_manifest(self.engine_dir, verify=verify)
        has_reasoner, has_sam2 = self.manifest.has_component("reasoner"), self.manifest.has_component("sam2")
        if not (has_reasoner or has_sam2):
            raise ManifestError(
                f"{self.engine_dir} holds neither a reasoner nor a sam2 component",
                hint="export into it with `segzero-edge export reasoner ...` and `segzero-edge export sam2 ...`",
            )
        sam2_threads = threads if sam2_threads is None else sam2_threads
        self._sessions: SessionFactory | None = None
        self._tracker = None
        self.reasoner: ReasonerPipeline | None = None
        self.sam2: Sam2Pipeline | None = None
        self.lens = None
        if self.manifest.has_component("lens") and backend == "torch":
            raise InputError("LENS engines have no torch backend yet", hint="use backend='ort' (or 'auto', 'trt')")
        if backend == "torch":
            if has_sam2:
                self.sam2 = Sam2Pipeline(
                    self.engine_dir,
                    manifest=self.manifest,
                    device=device,
                    backend="torch",
                    threads=sam2_threads,
                    backend_options={"checkpoint": sam2_checkpoint, "verify": verify},
                )
            if has_reasoner:
                self.reasoner = ReasonerPipeline(
                    self.manifest,
                    engine_dir=self.engine_dir,
                    device=device,
                    backend="torch",
                    threads=threads,
                    backend_options={"checkpoint": reasoner_checkpoint, "weights": torch_weights, "verify": verify},
                )
        else:
            sessions = SessionFactory(device, threads=threads)
            self._sessions = sessions
            if has_sam2:
                self.sam2 = Sam2Pipeline(
                    self.engine_dir,
                    manifest=self.manifest,
                    device=device,
                    backend=backend,
                    threads=sam2_threads,
                    sessions=sessions,
                )
            if has_reasoner:
                self.reasoner = ReasonerPipeline(self.manifest, engine_dir=self.engine_dir, sessions=sessions)
            if self.manifest.has_component("lens"):
                from .lens import LensPipeline

                self.lens = LensPipeline(self.engine_dir, self.manifest, sessions=sessions, context=lens_context)
        if lens_context is not None and self.lens is None:
            raise InputError("lens_context is for LENS engines", hint="drop it, or load a LENS engine directory")
        self._reasoner_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="segzero-sam2")
        self._closed = False
        log.info(
            "segmenter ready: %s (reasoner %s, sam2 %s)",
            self.engine_dir,
            self.reasoner.backend.name if self.reasoner else "none",
            self.sam2.backend.name if self.sam2 else "none",
        )

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the encoder worker threads (the object is unusable afterwards)."""
        self._closed = True
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers -----------------------------------------------------------------------------------
    def _require(self, verb: str, *, reasoner: bool = False, sam2: bool = False) -> None:
        if self._closed:
            raise InputError(
                f"{verb}() on a closed Segmenter", hint="create a new Segmenter (or call it before close())"
            )
        for needed, stage, what in ((reasoner, self.reasoner, "reasoner"), (sam2, self.sam2, "sam2")):
            if needed and stage is None:
                raise ManifestError(
                    f"{verb}() needs the {what} component, which {self.engine_dir} does not hold",
                    hint=f"export it into the directory with `segzero-edge export {what} ... --out {self.engine_dir}`",
                )

    def _check_text(self, text: object, options: SegmenterOptions) -> str:
        check_text(text, "text")
        if not text.strip():
            raise InputError("text is empty", hint="describe the object to segment")
        if len(text) > options.max_text_length:
            raise InputError(
                f"text has {len(text)} characters, more than max_text_length={options.max_text_length}",
                hint="shorten the instruction or raise max_text_length",
            )
        return text

    def _features(self, frame: Frame) -> tuple[Sam2Features, bool]:
        return self._cache.get_or_compute(frame.key, "sam2", lambda: self.sam2.encode(frame.rgb))

    def _start_features(self, frame: Frame, overlap: bool) -> Callable[[], tuple[Sam2Features, bool]]:
        if overlap:
            return self._pool.submit(self._features, frame).result
        return lambda: self._features(frame)

    def _reason(
        self,
        frame: Frame,
        text: str,
        options: SegmenterOptions,
        on_text: Callable[[str], None] | None,
        mask_pass: bool = False,
    ) -> tuple[ReasonerResult, dict[str, float], np.ndarray | None]:
        """The generation and its timings (``preprocess`` and ``vision`` include the encoding on a cache miss);
        with ``mask_pass`` (LENS engines), also the learned queries' hidden states after it."""
        with self._reasoner_lock:
            t0 = time.perf_counter()
            vision, hit = self._cache.get_or_compute(frame.key, "vision", lambda: self.reasoner.encode(frame.rgb))
            result = self.reasoner.generate(None, text, options.generation, on_text=on_text, vision=vision)
            timings = {k: v for k, v in result.timings_ms.items() if k != "total"}
            if not hit:
                for key, ms in vision.timings_ms.items():
                    timings[key] = timings.get(key, 0.0) + ms
            timings["reasoning"] = _ms(t0)
            hidden = None
            if mask_pass:
                t1 = time.perf_counter()
                hidden = self.reasoner.query_hidden(text, result.token_ids, vision, self.lens.queries)
                timings["mask_pass"] = _ms(t1)
            return result, timings, hidden

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
            InputError: bad image or text. ConfigError: bad option override. ManifestError: the engine has
            no reasoner or no SAM2.
        """
        t_start = time.perf_counter()
        self._require("predict", reasoner=True, sam2=True)
        options = self.options.updated(**overrides)
        text = self._check_text(text, options)
        frame = Frame.load(image, color=color)
        t_load = _ms(t_start)
        features = self._start_features(frame, options.overlap)
        reasoned, reason_timings, hidden = self._reason(frame, text, options, on_text, self.lens is not None)
        answer = reasoned.answer()
        t0 = time.perf_counter()
        feats, hit = features()
        timings = {"load": t_load, **reason_timings, "sam2_wait": _ms(t0)}
        if not hit:
            timings.update({f"sam2_{k}": v for k, v in feats.timings_ms.items()})
        if hidden is not None:
            return self._finish_lens(frame, answer, feats, hidden, timings, t_start, reasoned)
        return self._finish(frame, answer, feats, options, timings, t_start, reasoned)

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
        self._require("reason", reasoner=True)
        options = self.options.updated(**overrides)
        text = self._check_text(text, options)
        reasoned, _, _ = self._reason(Frame.load(image, color=color), text, options, on_text)
        return reasoned.answer()

    def track(
        self,
        image: ImageLike,
        text: str | None = None,
        *,
        box: Sequence[float] | Sequence[Sequence[float]] | None = None,
        points: Any = None,
        labels: Any = None,
        mask: Any = None,
        color: Color = "rgb",
        reason_after_lost: int = 15,
        **overrides: Any,
    ):
        """Start a track on ``image``: reason once about ``text`` (or take ``box``/``points`` prompts, one
        object per box or per point set, ``Sam2Pipeline.decode``'s conventions, or ``mask``: ``(H, W)`` bool,
        ``[N, H, W]`` for N objects), then follow the objects with SAM2's video memory, frame by frame
        (``Track.update``). Needs the engine's ``tracker`` component (``segzero-edge export sam2`` writes it;
        ``export lens --stock-sam2`` too). On a LENS engine the track starts from the mask ``predict`` gives,
        as SAM2's ``add_new_mask`` would; other families start from the answer's boxes and points.

        Args:
            reason_after_lost: with ``text``: re-reason (in the background) after this many frames with
                every object lost; 0 never does.
            overrides: ``SegmenterOptions`` fields for the reasoning.

        Returns:
            a ``segzero_edge.tracker.Track``; ``track.last`` is the first frame's ``Segmentation``.
        """
        from .tracker.track import start_track

        self._require("track", reasoner=text is not None, sam2=True)
        prompted = box is not None or points is not None or labels is not None
        if (text is not None) + prompted + (mask is not None) != 1:
            raise InputError(
                "give either text or box/points prompts or a mask (one of them)",
                hint="seg.track(frame, 'the cup'), seg.track(frame, box=...) or seg.track(frame, mask=...)",
            )
        if self._tracker is None and self.lens is not None and not self.manifest.has_component("tracker"):
            raise ManifestError(
                f"{self.engine_dir} is a LENS engine without the tracker component (SAM2's video memory)",
                hint="add it: `segzero-edge export tracker --checkpoint sam2_hiera_large.pt --config sam2_hiera_l "
                f"--out {self.engine_dir}` (or export the LENS engine with --stock-sam2)",
            )
        if self._tracker is None:
            from .tracker.pipeline import TrackerPipeline

            self._tracker = TrackerPipeline(
                self.engine_dir, manifest=self.manifest, sam2=self.sam2, sessions=self._sessions, verify="none"
            )
        options = self.options.updated(**overrides)
        reason = None
        if text is not None:
            text = self._check_text(text, options)

            def reason(rgb: np.ndarray) -> tuple[Answer, np.ndarray | None]:
                if self.lens is not None:  # LENS: the mask pass's mask starts the track
                    res = self.predict(rgb, text, **overrides)
                    return res.answer, res.mask[None]
                return self._reason(Frame.load(rgb), text, options, None)[0].answer(), None

        if text is not None:
            prompts = None
        elif mask is not None:
            prompts = {"mask": mask}
        else:
            prompts = {"box": box, "points": points, "labels": labels}
        return start_track(
            self._tracker, image, reason=reason, prompts=prompts, reason_after_lost=reason_after_lost, color=color
        )

    def segment(
        self,
        image: ImageLike,
        *,
        box: Sequence[float] | None = None,
        points: Sequence[Sequence[float]] | None = None,
        labels: Sequence[int] | None = None,
        answer: Answer | None = None,
        color: Color = "rgb",
        **overrides: Any,
    ) -> Segmentation:
        """Only the SAM2 stage, from a box ``(x1, y1, x2, y2)`` and/or points ``[(x, y), ...]`` in
        original-image pixels (labels 1 = foreground, 0 = background; default all foreground), or from
        every object of a decoded ``answer`` exactly as ``predict`` segments them.

        Args:
            answer: an ``Answer`` decoded for this image's size: ``reason()`` on the same image, or
                ``decode_answer(text, image_size=(W, H), model_size=...)`` of text a reasoning model wrote
                elsewhere (e.g. on a server). Not together with ``box``/``points``/``labels``.
        """
        t_start = time.perf_counter()
        self._require("segment", sam2=True)
        options = self.options.updated(**overrides)
        if answer is not None:
            if not isinstance(answer, Answer):
                raise InputError(
                    f"answer must be an Answer, got {type(answer).__name__}",
                    hint="decode the model's text with segzero_edge.decode_answer(text, image_size=(W, H))",
                )
            if box is not None or points is not None or labels is not None:
                raise InputError("give either answer= or box/points prompts, not both")
            frame = Frame.load(image, color=color)
            feats, hit = self._features(frame)
            timings = {} if hit else {f"sam2_{k}": v for k, v in feats.timings_ms.items()}
            return self._finish(frame, answer, feats, options, timings, t_start, None)
        pts = point_pairs(points)
        if box is None and not pts:
            raise InputError("segment() needs a box, points, or both")
        frame = Frame.load(image, color=color)
        feats, hit = self._features(frame)
        timings = {} if hit else {f"sam2_{k}": v for k, v in feats.timings_ms.items()}
        w, h = frame.size
        outside = box is not None and box_outside(box, w, h)
        if box is not None:
            box = clip_box(box, w, h)
        return self._decode(frame, feats, [Prompt(box, pts, outside)], labels, options, timings, t_start)

    def _finish(
        self,
        frame: Frame,
        answer: Answer,
        feats: Sam2Features,
        options: SegmenterOptions,
        timings: dict[str, float],
        t_start: float,
        reasoned: ReasonerResult | None,
    ) -> Segmentation:
        w, h = frame.size
        common = dict(
            reasoning=answer.think,
            raw_text=reasoned.text if reasoned is not None else answer.raw_text,
            answer=answer,
            generation=reasoned.stats() if reasoned is not None else None,
        )
        if not answer.ok or not answer.objects:
            timings["total"] = _ms(t_start)
            if answer.error == EMPTY_ANSWER:
                error = "the model found no object that matches the instruction (its answer is an empty list)"
            else:
                error = answer.error or "the answer has no box"
            return Segmentation(mask=np.zeros((h, w), bool), found=False, timings_ms=timings, error=error, **common)
        objects = answer.objects
        limit = options.generation.max_objects
        if len(objects) > limit:
            log.warning("the answer lists %d objects; segmenting the first max_objects=%d", len(objects), limit)
            objects = objects[:limit]
        prompts = [
            Prompt(o.box, o.points, box_outside(o.raw_box if o.raw_box is not None else o.box, w, h)) for o in objects
        ]
        return self._decode(frame, feats, prompts, None, options, timings, t_start, **common)

    def _finish_lens(
        self,
        frame: Frame,
        answer: Answer,
        feats: Sam2Features,
        hidden: np.ndarray,
        timings: dict[str, float],
        t_start: float,
        reasoned: ReasonerResult,
    ) -> Segmentation:
        """A LENS engine's result: the mask from the queries' hidden states (``LensPipeline.segment``)."""
        from .lens.pipeline import lens_segmentation

        res = self.lens.segment(feats, hidden)
        timings.update(res.timings_ms)
        timings["total"] = _ms(t_start)
        return lens_segmentation(res, answer, reasoned.text, reasoned.stats(), timings)

    def _decode(
        self,
        frame: Frame,
        feats: Sam2Features,
        prompts: Sequence[Prompt],
        labels: Sequence[int] | None,
        options: SegmenterOptions,
        timings: dict[str, float],
        t_start: float,
        **common: Any,
    ) -> Segmentation:
        """SAM2's masks for the objects' prompts (``sam2.objects.segment_objects``) as a ``Segmentation``:
        found only when some object has a mask."""
        res = segment_objects(self.sam2, feats, prompts, labels=labels, mask_mode=options.mask_mode)
        timings.update(res.timings_ms)
        timings["total"] = _ms(t_start)
        first = prompts[0]
        return Segmentation(
            mask=res.union,
            found=res.error is None,
            box=first.box,
            points=tuple(first.points),
            score=res.objects[0].score if res.error is None else 0.0,
            timings_ms=timings,
            error=res.error,
            objects=res.objects,
            **common,
        )
