"""``TrackerPipeline``: one SAM2 video step at a time (prompt a frame, track a frame), over a backend.

    tracker = TrackerPipeline("engine_dir", device="cpu")
    track = tracker.start(frame0, box=[x1, y1, x2, y2], points=[[px, py]])   # a Track (track.py)
    res = track.update(frame1)                                            # Segmentation per frame

The steps reproduce ``SAM2VideoPredictor`` (sam2 1.1.0) frame by frame, with the graphs of
``contract.py`` and the fixed bank of ``bank.py``:

* frames are preprocessed as the video predictor loads them (``preprocess_frame``: Pillow's bicubic
  resize of the uint8 frame to S x S, ``/ 255``, ImageNet mean/std; not the image predictor's
  antialiased bilinear) and encoded by the sam2 component's ``image_encoder`` (by ``tracker.image_encoder``
  where the tracker has its own: LENS engines);
* a prompted frame runs the SAM heads on ``image_embed`` (``directly_add_no_mem_embed``: no memory
  attention), a tracked frame on the memory-conditioned ``pix_feat`` with no prompt (one padding point);
* a frame prompted with a mask (``mask_step``, SAM2's ``add_new_mask``) takes the mask as its output: resized
  to S x S (antialiased bilinear, ``>= 0.5``), logits ``20 * mask - 10`` downsampled to r x r (antialiased),
  predicted IoU 1, object score +-10 by whether the mask is empty; only the object pointer comes from a
  graph (``tracker.mask_prompt``);
* the mask token is SAM2Base's choice: multimask (highest predicted IoU of tokens 1..3) when the frame
  has ``multimask_min_pt_num..multimask_max_pt_num`` points (box corners count; a tracked frame has 0),
  else token 0 with the stability fallback; the object pointer comes from the same token
  (``use_multimask_token_for_obj_ptr``), token 0 otherwise;
* masks are -1024 where the object score is <= 0 (no object), and enter memory binarized on prompted
  frames and as a scaled sigmoid otherwise;
* masks come back at the frame's size (bilinear from the low-res logits, ``> 0``), like
  ``_get_orig_video_res_output``. The video predictor's hole filling (``fill_hole_area`` 8) needs SAM2's
  CUDA extension and is skipped by the official code without it (as on every CPU); it is not done here.

Backends (``TrackerBackend``): ONNX Runtime (``"ort"``, also with its TensorRT provider: ``device="tensorrt"``)
and TensorRT engines built by ``segzero-edge build`` (``"trt"``; ``"auto"`` picks them when the SAM2 stage
runs on TensorRT and the build holds the tracker engines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import BackendUnavailableError, EngineIncompatibleError, InputError
from ..frame import ImageLike, load_image
from ..manifest import Manifest, Verify, load_manifest
from ..ort import SessionFactory
from ..sam2 import Sam2Features, Sam2Pipeline
from ..sam2.contract import COMPONENT as SAM2_COMPONENT
from ..sam2.host import build_prompts, choose_masks, masks_from_logits
from .bank import MemoryBank
from .contract import (
    BINARIZE,
    COMPONENT,
    HIGH_RES_FEATS_0,
    HIGH_RES_FEATS_1,
    IMAGE_EMBED,
    IMAGE_ENCODER,
    IOU_SCORES,
    LOW_RES_MASKS,
    MASK_INPUT_BIAS,
    MASK_INPUT_SCALE,
    MASK_INPUTS,
    MASK_LOGITS,
    MEMORY,
    MEMORY_TPOS,
    MEMORY_VALID,
    NO_OBJ_SCORE,
    OBJ_PTRS,
    OBJECT_SCORE_LOGITS,
    PIX_FEAT,
    POINT_COORDS,
    POINT_LABELS,
    PTR_TPOS,
    PTR_VALID,
    TrackerSettings,
    check_graphs,
)
from .preprocess import preprocess_frame
from .prompts import as_masks, mask_inputs, resize_antialiased

log = logging.getLogger(__name__)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


class TrackerBackend(Protocol):
    """The three tracker graphs, by their contract names."""

    name: str
    device: str

    def attend(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """``tracker.memory_attention`` -> ``pix_feat`` [N,C,h,w]."""
        ...

    def decode(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``tracker.mask_decoder`` -> its four outputs by name."""
        ...

    def encode_memory(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """``tracker.memory_encoder`` -> ``maskmem_features`` [N,D,h,w]."""
        ...

    def mask_pointer(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """``tracker.mask_prompt`` -> ``obj_ptr`` [N,C]; raises ``EngineIncompatibleError`` without it."""
        ...

    def encode_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """``tracker.image_encoder`` (engines whose tracker has its own): ``[1,3,S,S]`` -> the features by name."""
        ...


#: On the CPU, the tracker graphs of an engine whose image embedding is at most this many tokens a side (input
#: <= 512 px) run on one intra-op thread: ONNX Runtime's hand-off to its non-spinning workers costs more than
#: splitting such small ops saves (world model, 2 cores: 9 -> 8 ms per tracked frame, 1.47x -> 1.59x the
#: official predictor; benchmarks/bench_tracker.py). Every official config (1024 px, 64 a side) uses them all.
SMALL_FEAT_SIZE = 32


@dataclass(frozen=True, eq=False)
class StepOutput:
    """One frame's SAM2 video step for N objects (internal to the tracker).

    Attributes:
        mask_logits: ``[N, r, r]`` float32, the chosen token's logits, -1024 where no object.
        scores: ``[N]`` predicted IoU of the chosen token.
        object_scores: ``[N]`` SAM2's object-presence logits (> 0: present).
        maskmem: ``[N, D, h, w]`` float32 memory of this frame.
        obj_ptr: ``[N, C]`` float32 object pointers.
        timings_ms: per graph.
    """

    mask_logits: np.ndarray
    scores: np.ndarray
    object_scores: np.ndarray
    maskmem: np.ndarray
    obj_ptr: np.ndarray
    timings_ms: Mapping[str, float] = field(default_factory=dict)


class TrackerPipeline:
    """SAM2's video steps on an engine directory with the ``sam2`` and ``tracker`` components.

    Args:
        engine_dir: the engine directory (``segzero-edge export sam2`` writes both components).
        manifest: its already loaded manifest (skips reading and verifying it again).
        sam2: an open ``Sam2Pipeline`` of the same directory to share (its image encoder); default: a
            new one with ``device``/``threads``.
        device: ``"auto" | "cpu" | "cuda[:N]" | "tensorrt[:N]"``.
        backend: ``"ort"``, ``"trt"``, ``"auto"``, or a ``TrackerBackend`` instance.
        threads: CPU threads per session.
        verify: how to check the engine files.
        sessions: an ONNX Runtime session factory to share.

    Raises:
        ManifestError: no tracker component (re-export with ``segzero-edge export sam2``).
        EngineIncompatibleError: graphs not of this contract, or exported from another SAM2 checkpoint
            than the ``sam2`` component.
    """

    def __init__(
        self,
        engine_dir: str | Path,
        *,
        manifest: Manifest | None = None,
        sam2: Sam2Pipeline | None = None,
        device: str = "auto",
        backend: str | TrackerBackend = "auto",
        threads: int | None = None,
        verify: Verify = "full",
        sessions: SessionFactory | None = None,
    ) -> None:
        self.engine_dir = Path(engine_dir)
        self.manifest = manifest if manifest is not None else load_manifest(self.engine_dir, verify=verify)
        self.settings = TrackerSettings.from_mapping(self.manifest.component(COMPONENT))
        self.specs = check_graphs(self.manifest)
        self.sam2 = sam2 or Sam2Pipeline(
            self.engine_dir, manifest=self.manifest, device=device, threads=threads, verify="none", sessions=sessions
        )
        #: True when the tracker encodes frames with its own image encoder (``tracker.image_encoder``).
        self.own_encoder = IMAGE_ENCODER in self.specs
        sam2_sources = [s.sha256 for s in self.sam2.manifest.sources if s.component == SAM2_COMPONENT]
        # With its own encoder, the tracker's frames never go through the sam2 component's graphs.
        if not self.own_encoder and sam2_sources and sam2_sources[0] != self.settings.sam2_sha256:
            raise EngineIncompatibleError(
                "the tracker graphs were exported from another SAM2 checkpoint than the sam2 component "
                f"(sha256 {self.settings.sam2_sha256[:12]} vs {sam2_sources[0][:12]})",
                hint="export both from one checkpoint: `segzero-edge export sam2` writes both",
            )
        if not self.own_encoder and self.sam2.settings.image_size != self.settings.image_size:
            raise EngineIncompatibleError("the tracker and sam2 components have different input sizes")
        if isinstance(backend, str):
            backend = self._open_backend(backend, device, threads, sessions)
        self.backend = backend
        log.info("tracker: %s backend on %s", backend.name, backend.device)

    def _open_backend(self, backend: str, device: str, threads: int | None, sessions) -> TrackerBackend:
        if backend not in ("auto", "ort", "trt"):
            raise InputError(f"unknown tracker backend {backend!r}", hint="use 'ort', 'trt' or 'auto'")
        from .trt_backend import has_trt_build

        if backend == "trt" or (backend == "auto" and self.sam2.backend.name == "trt" and has_trt_build(self.manifest)):
            from .trt_backend import TrtTrackerBackend

            try:
                return TrtTrackerBackend(self.engine_dir, self.manifest)
            except BackendUnavailableError as exc:
                if backend == "trt":
                    raise
                log.info("tracker TensorRT engines not usable here (%s); using ONNX Runtime", exc.message)
        from .ort_backend import OrtTrackerBackend

        sessions = sessions or SessionFactory(device, threads=threads)
        if self.settings.feat_size <= SMALL_FEAT_SIZE and not sessions.device.on_gpu:
            threads = 1
        return OrtTrackerBackend(self.engine_dir, self.specs, sessions, threads=threads)

    # -- frames ------------------------------------------------------------------------------------
    def encode(self, frame: ImageLike) -> Sam2Features:
        """Load, preprocess (``preprocess_frame``) and encode one frame: a path, a PIL image or an
        ``(H, W, 3)`` uint8 RGB array; with the tracker's own image encoder when it has one."""
        s = self.settings

        def prep(rgb: np.ndarray) -> np.ndarray:
            return preprocess_frame(rgb, s.image_size, s.pixel_mean, s.pixel_std)

        if not self.own_encoder:
            return self.sam2.encode(frame, preprocess=prep)
        t0 = time.perf_counter()
        rgb = load_image(frame)
        x = prep(rgb)
        t_pre = _ms(t0)
        t0 = time.perf_counter()
        out = self.backend.encode_image(x)
        timings = {"preprocess": t_pre, "encoder": _ms(t0)}
        return Sam2Features(**out, image_size=(rgb.shape[1], rgb.shape[0]), timings_ms=timings)

    def new_bank(self, num_objects: int) -> MemoryBank:
        s = self.settings
        return MemoryBank(
            num_objects,
            (s.mem_dim, s.feat_size, s.feat_size),
            s.hidden_dim,
            num_maskmem=s.num_maskmem,
            max_obj_ptrs=s.max_obj_ptrs,
            t_diff_max=s.t_diff_max,
        )

    # -- steps -------------------------------------------------------------------------------------
    def _multimask(self, num_points: int) -> bool:
        s = self.settings
        return s.multimask_output_in_sam and s.multimask_min_pt_num <= num_points <= s.multimask_max_pt_num

    def _heads(self, feats: Sam2Features, pix_feat: np.ndarray, coords: np.ndarray, labels: np.ndarray, *, tracked):
        """Decoder + mask choice for objects that share a point count; returns logits, scores, ptrs."""
        out = self.backend.decode(
            {
                PIX_FEAT: pix_feat,
                HIGH_RES_FEATS_0: feats.high_res_feats_0,
                HIGH_RES_FEATS_1: feats.high_res_feats_1,
                POINT_COORDS: coords,
                POINT_LABELS: labels,
            }
        )
        s = self.settings
        low_res, iou, obj, ptrs = out[LOW_RES_MASKS], out[IOU_SCORES], out[OBJECT_SCORE_LOGITS], out[OBJ_PTRS]
        # A tracked frame has no points (num_pts 0); multimask_output_for_tracking decides there.
        multimask = self._multimask(0 if tracked else coords.shape[1])
        if tracked:
            multimask = multimask and s.multimask_output_for_tracking
        mode = "best" if multimask else "single"
        chosen = choose_masks(low_res, iou, mode, delta=s.stability_delta, threshold=s.stability_threshold)
        rows = np.arange(len(chosen))
        token = chosen if multimask and s.use_multimask_token_for_obj_ptr else np.zeros_like(chosen)
        present = obj.reshape(-1) > 0
        logits = np.where(present[:, None, None], low_res[rows, chosen], np.float32(NO_OBJ_SCORE))
        return logits.astype(np.float32), iou[rows, chosen], obj.reshape(-1), ptrs[rows, token]

    def _memory(self, feats: Sam2Features, logits: np.ndarray, obj: np.ndarray, binarize: bool) -> np.ndarray:
        n = logits.shape[0]
        return self.backend.encode_memory(
            {
                IMAGE_EMBED: feats.image_embed,
                MASK_LOGITS: np.ascontiguousarray(logits[:, None]),
                OBJECT_SCORE_LOGITS: np.ascontiguousarray(obj.reshape(n, 1), dtype=np.float32),
                BINARIZE: np.full((n,), binarize, dtype=bool),
            }
        )

    def prompt_step(self, feats: Sam2Features, *, box=None, points=None, labels=None) -> StepOutput:
        """SAM2 on a prompted frame (a new conditioning frame): boxes/points in the frame's pixels, as
        ``Sam2Pipeline.decode`` takes them; objects with different point counts are decoded separately."""
        s = self.settings
        t0 = time.perf_counter()
        n, batches = build_prompts(
            box=box,
            points=points,
            labels=labels,
            image_wh=feats.image_size,
            image_size=s.image_size,
            low_res_size=s.low_res_size,
            max_objects=self.sam2.settings.max_objects,
        )
        if n == 0:
            raise InputError("no objects to track", hint="give at least one box or one set of points")
        r = s.low_res_size
        logits = np.empty((n, r, r), np.float32)
        scores, obj = np.empty(n, np.float32), np.empty(n, np.float32)
        ptr = np.empty((n, s.hidden_dim), np.float32)
        for b in batches:
            pix = np.broadcast_to(feats.image_embed, (len(b.indices), *feats.image_embed.shape[1:]))
            out = self._heads(feats, np.ascontiguousarray(pix), b.point_coords, b.point_labels, tracked=False)
            logits[b.indices], scores[b.indices], obj[b.indices], ptr[b.indices] = out
        t_dec = _ms(t0)
        t0 = time.perf_counter()
        maskmem = self._memory(feats, logits, obj, s.binarize_mask_from_pts)
        return StepOutput(logits, scores, obj, maskmem, ptr, {"decoder": t_dec, "memory_encoder": _ms(t0)})

    def mask_step(self, feats: Sam2Features, masks: np.ndarray) -> StepOutput:
        """SAM2 on a frame prompted with masks (a new conditioning frame): ``masks`` ``[N, H, W]`` bool at
        the frame's size (``feats.image_size``), one per object. The masks are the frame's output; the graph
        gives their object pointers (see the module docstring).

        Raises:
            InputError: masks not ``[N, H, W]`` at the frame's size (``prompts.as_masks``), more than the
                engine's objects. An empty mask is an absent object, as for SAM2.
            EngineIncompatibleError: the engine's tracker has no ``tracker.mask_prompt`` graph.
        """
        s = self.settings
        masks = as_masks(masks, feats.image_size)
        if len(masks) > self.sam2.settings.max_objects:
            raise InputError(f"{len(masks)} masks; this engine tracks at most {self.sam2.settings.max_objects}")
        t0 = time.perf_counter()
        inputs = mask_inputs(masks, s.image_size)
        ptr = self.backend.mask_pointer(
            {
                IMAGE_EMBED: feats.image_embed,
                HIGH_RES_FEATS_0: feats.high_res_feats_0,
                HIGH_RES_FEATS_1: feats.high_res_feats_1,
                MASK_INPUTS: inputs,
            }
        )
        r = s.low_res_size
        logits = np.stack([resize_antialiased(m[0] * MASK_INPUT_SCALE + MASK_INPUT_BIAS, (r, r)) for m in inputs])
        present = inputs.reshape(len(inputs), -1).max(axis=1) > 0
        obj = np.where(present, MASK_INPUT_SCALE + MASK_INPUT_BIAS, MASK_INPUT_BIAS).astype(np.float32)
        t_ptr = _ms(t0)
        t0 = time.perf_counter()
        # add_new_mask defers the memory to propagate_in_video_preflight, which encodes these logits as any
        # prompted frame's (upsampled, binarized: is_mask_from_pts=True).
        maskmem = self._memory(feats, logits, obj, s.binarize_mask_from_pts)
        scores = np.ones(len(inputs), np.float32)
        return StepOutput(logits, scores, obj, maskmem, ptr, {"mask_prompt": t_ptr, "memory_encoder": _ms(t0)})

    def track_step(self, feats: Sam2Features, bank: MemoryBank, frame: int) -> StepOutput:
        """SAM2 on frame ``frame`` of a track, conditioned on ``bank`` (which this does not change)."""
        t0 = time.perf_counter()
        memory, tpos, valid, ptrs, ptr_tpos, ptr_valid = bank.feeds(frame)
        pix = self.backend.attend(
            {
                IMAGE_EMBED: feats.image_embed,
                MEMORY: memory,
                MEMORY_TPOS: tpos,
                MEMORY_VALID: valid,
                OBJ_PTRS: ptrs,
                PTR_TPOS: ptr_tpos,
                PTR_VALID: ptr_valid,
            }
        )
        t_att = _ms(t0)
        t0 = time.perf_counter()
        n = bank.n
        coords = np.zeros((n, 1, 2), np.float32)
        labels = np.full((n, 1), -1.0, np.float32)
        logits, scores, obj, ptr = self._heads(feats, pix, coords, labels, tracked=True)
        t_dec = _ms(t0)
        t0 = time.perf_counter()
        maskmem = self._memory(feats, logits, obj, False)
        timings = {"memory_attention": t_att, "decoder": t_dec, "memory_encoder": _ms(t0)}
        return StepOutput(logits, scores, obj, maskmem, ptr, timings)

    def masks(self, step: StepOutput, size_wh: tuple[int, int]) -> np.ndarray:
        """``[N, H, W]`` bool masks of a step at the frame's size."""
        w, h = size_wh
        return masks_from_logits(step.mask_logits, (h, w), self.settings.mask_threshold)
