"""``export_lens``: a LENS checkpoint (published layout) -> a complete engine directory.

Three components from one checkpoint, written together:

* ``reasoner``: the Qwen2.5-VL graphs as for any reasoner (``reasoner_export``), family ``lens`` with its
  prompt template, and a decoder graph that also returns ``hidden_states`` (the mask pass);
* ``sam2``: the image encoder and the box/point decoder from the checkpoint's own ``sam.*`` weights
  (``sam2_export``), validated against the official model built from them;
* ``lens``: the learned queries, the context graph (float, and weight-only INT8/INT4 variants) and the mask
  decoder that takes prompt embeddings (``onnx_export.py``).

The image encoder is compared with a stock SAM2 checkpoint when one is given (``stock_sam2``): LENS trains
only the prompt encoder and mask decoder, so its encoder should be the stock SAM2 2.0 Hiera-L; a difference is
reported (logged and recorded), not refused. The ``tracker`` component (SAM2's video memory, which LENS
checkpoints do not carry) is exported from the stock checkpoint too, with its own image encoder, so that
tracks can start from a LENS mask; it is validated against the official ``SAM2VideoPredictor`` like any
tracker.

Everything is written into a hidden staging folder next to ``out_dir``, validated end to end against the
torch reference (``validate.py``), and only then put in place (``engine_dir.publish_engine``).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import CheckpointError, ConfigError
from segzero_edge.files import remove_stale, staging_dir
from segzero_edge.lens.contract import (
    COMPONENT,
    CONTEXT_GRAPHS,
    MASK_DECODER,
    QUERIES_FILE,
    SETTINGS_FILE,
    LensSettings,
    context_spec,
    mask_decoder_spec,
)
from segzero_edge.manifest import Manifest, SourceCheckpoint, load_manifest, save_manifest, sha256_tree
from segzero_edge.prompt import LENS, LENS_TEMPLATES
from segzero_edge.reference.lens import (
    CONNECTOR_HEADS,
    compare_image_encoder,
    image_encoder_digest,
    load_context_module,
    load_lens_sam2,
    read_lens_parts,
)

from ..engine_dir import EngineDirWriter, check_output, publish_engine
from ..reasoner_export.checkpoint import WeightReader, inspect_checkpoint
from ..reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
from ..sam2_export.config import Sam2ExportConfig
from ..sam2_export.export import export_sam2_model
from ..sam2_export.onnx_export import check_onnx_io, feature_shapes
from .onnx_export import export_context, export_mask_decoder, quantize_context

log = logging.getLogger(__name__)

CONTEXT_WEIGHTS = tuple(CONTEXT_GRAPHS)


@dataclass(frozen=True)
class LensExportConfig:
    """Options of ``segzero-edge export lens``.

    Attributes:
        reasoner: the reasoner's export options (weights, input size, validation...); ``family``,
            ``hidden_states`` and ``prompt_template`` are set by the LENS export.
        template: the prompt template the checkpoint was trained with: ``grounding`` (OuyBin/LENS,
            LENS_ReasonSeg, LENS_ReasonSeg_FT) or ``cot`` (LENS_ReasonSeg_CoT).
        context_weights: the context graph variants to write (``fp32`` always).
        default_context: the variant the runtime runs unless told otherwise.
        sam2_config: the SAM2 config of ``sam.*`` (default: guessed from the weights; LENS: ``sam2_hiera_l``).
        stock_sam2: a stock official SAM2 ``.pt`` to compare the image encoder with.
        tracker: export the tracker from ``stock_sam2`` (when given).
        tracker_validation_frames: frames of the tracker's validation clip (>= 8).
        validation_images: seeded images the end-to-end validation runs (0: none).
        validation_tokens: greedy tokens generated per validation image.
        min_mask_iou: gate on the final mask IoU against the torch reference (fp32 reasoner).
        hidden_rtol, context_rtol: gates on the mask pass's hidden states (fp32 reasoner) and the float context
            graph's prompt token: max |diff| / max |reference|.
    """

    reasoner: ReasonerExportConfig = field(
        default_factory=lambda: ReasonerExportConfig(family=LENS, hidden_states=True)
    )
    template: str = "grounding"
    context_weights: tuple[str, ...] = CONTEXT_WEIGHTS
    default_context: str = "fp32"
    sam2_config: str | None = None
    stock_sam2: str | Path | None = None
    tracker: bool = True
    tracker_validation_frames: int = 30
    validation_images: int = 3
    validation_tokens: int = 24
    min_mask_iou: float = 0.999
    hidden_rtol: float = 1e-4
    context_rtol: float = 1e-5

    def __post_init__(self) -> None:
        if self.template not in LENS_TEMPLATES:
            raise ConfigError(
                f"unknown LENS template {self.template!r}", hint=f"use one of {', '.join(LENS_TEMPLATES)}"
            )
        weights = tuple(dict.fromkeys(("fp32", *self.context_weights)))
        unknown = [w for w in weights if w not in CONTEXT_WEIGHTS]
        if unknown:
            raise ConfigError(f"unknown context weights {unknown}", hint=f"use some of {', '.join(CONTEXT_WEIGHTS)}")
        object.__setattr__(self, "context_weights", weights)
        if self.default_context not in weights:
            raise ConfigError(f"default_context {self.default_context!r} is not among the exported {list(weights)}")
        if isinstance(self.tracker_validation_frames, bool) or not isinstance(self.tracker_validation_frames, int):
            raise ConfigError(f"tracker_validation_frames must be an int, got {self.tracker_validation_frames!r}")
        if self.tracker_validation_frames < 8:
            raise ConfigError("tracker_validation_frames must be >= 8 (the clip needs its exit and re-entry)")
        if isinstance(self.validation_images, bool) or not 0 <= self.validation_images <= 8:
            raise ConfigError(f"validation_images must be 0..8, got {self.validation_images!r}")
        object.__setattr__(
            self,
            "reasoner",
            replace(self.reasoner, family=LENS, hidden_states=True, prompt_template=self.template),
        )


def _lens_settings(parts, cfg: LensExportConfig) -> LensSettings:
    return LensSettings(
        num_queries=parts.num_queries,
        hidden_size=parts.hidden,
        prompt_dim=parts.prompt_dim,
        connector_heads=CONNECTOR_HEADS,
        connector_blocks=parts.blocks,
        template=cfg.template,
        context_precisions=cfg.context_weights,
        default_context=cfg.default_context,
    )


def _encoder_check(parts, stock_sam2: str | Path | None) -> dict[str, Any]:
    """The image encoder's digest, compared with a stock SAM2 checkpoint when one is given."""
    if stock_sam2 is None:
        log.info("no --stock-sam2 given: the image encoder's digest is recorded, not compared")
        return {"sha256": image_encoder_digest(parts.sam), "stock": None}
    from segzero_edge.reference.sam2_model import read_state_dict

    report = compare_image_encoder(parts.sam, dict(read_state_dict(stock_sam2)))
    report["stock_checkpoint"] = str(Path(stock_sam2).absolute())
    if report["stock"]:
        log.info("the image encoder is stock SAM2 (%s)", Path(stock_sam2).name)
    else:
        log.warning(
            "the image encoder is NOT the stock %s: %d tensors differ (max |diff| %.3g; first: %s)",
            Path(stock_sam2).name,
            report["tensors_differing"],
            report["max_abs_diff"],
            ", ".join(report["first_differing"]),
        )
    return report


def _write_lens_component(engine: Path, parts, context, sam, cfg: LensExportConfig, source: SourceCheckpoint) -> None:
    """The ``lens`` component of the staged engine ``engine`` (validation numbers come later)."""
    settings = _lens_settings(parts, cfg)
    shapes = feature_shapes(sam)
    with EngineDirWriter(engine, COMPONENT) as w:
        np.save(w.path(QUERIES_FILE), np.ascontiguousarray(parts.queries, np.float32))
        fp32_path = w.path(CONTEXT_GRAPHS["fp32"][1])
        info = {"fp32": export_context(context, fp32_path)}
        for precision in cfg.context_weights:
            if precision != "fp32":
                bits = 8 if precision == "int8" else 4
                info[precision] = quantize_context(fp32_path, w.path(CONTEXT_GRAPHS[precision][1]), bits)
        export_mask_decoder(sam, w.path("lens/mask_decoder.onnx"))
        graphs = {
            CONTEXT_GRAPHS[p][0]: replace(
                context_spec(p, parts.num_queries, parts.hidden, parts.prompt_dim, info[p].get("quantization", {})),
                external_data=tuple(f"lens/{f}" for f in info[p]["external_data"]),
            )
            for p in cfg.context_weights
        }
        graphs[MASK_DECODER] = mask_decoder_spec(shapes, sam.image_size // 4, parts.prompt_dim)
        for spec in graphs.values():
            check_onnx_io(w.dir / spec.file, spec)
        w.path(SETTINGS_FILE).write_text(json.dumps(settings.to_dict(), indent=2) + "\n")
        w.commit(settings=settings.to_dict(), graphs=graphs, sources=[source])


def _export_tracker(engine: Path, cfg: LensExportConfig, sam2_config: str) -> None:
    """The ``tracker`` component from the stock SAM2 checkpoint (LENS checkpoints carry no memory modules),
    with that checkpoint's own image encoder: LENS fine-tunes ``conv_s0``/``conv_s1``, which make the
    high-res features, so the ``sam2`` component's encoder is not the one the memory modules were trained on."""
    if not cfg.tracker or cfg.stock_sam2 is None:
        if cfg.tracker:
            log.info("no --stock-sam2 given: no tracker (LENS checkpoints carry no SAM2 memory modules)")
        return
    from ..tracker_export.export import export_tracker

    export_tracker(
        cfg.stock_sam2,
        engine,
        sam2_config,
        validation_frames=cfg.tracker_validation_frames,
        progress=True,
        own_encoder=True,
    )


def export_lens(model_dir: str | Path, out_dir: str | Path, config: LensExportConfig | None = None) -> Manifest:
    """Export a LENS checkpoint into a complete engine directory ``out_dir`` (reasoner, sam2, lens, and the
    tracker from ``config.stock_sam2`` when one is given and ``config.tracker``).

    Raises:
        CheckpointError: not a LENS checkpoint, or a missing/mis-shaped tensor (the message names it).
        ConfigError / InputError: bad options.
        ExportValidationError: a graph disagrees with the torch reference; ``out_dir`` is unchanged.
    """
    cfg = config or LensExportConfig()
    start = time.perf_counter()
    check_output(out_dir)  # a bad --out fails now, not after minutes of export
    model_dir = Path(model_dir)
    ckpt = inspect_checkpoint(model_dir, input_size=cfg.reasoner.input_size, family=LENS)
    parts = read_lens_parts(WeightReader(ckpt.weight_files), ckpt.text.hidden_size)
    context = load_context_module(parts)
    sam, sam2_config = load_lens_sam2(parts.sam, cfg.sam2_config)
    if parts.prompt_dim != int(sam.hidden_dim):
        raise CheckpointError(
            f"LENS weight 'proj_to_sam.2.weight' makes {parts.prompt_dim}-wide prompt tokens, but the checkpoint's "
            f"SAM2 ({sam2_config}) takes {int(sam.hidden_dim)}-wide ones",
            hint="the connector and sam.* must come from one LENS checkpoint (or pass the right --sam2-config)",
        )
    encoder = _encoder_check(parts, cfg.stock_sam2)
    digest = sha256_tree(ckpt.path)
    where = str(ckpt.path.absolute())  # found from any working directory
    out = Path(out_dir).absolute()
    remove_stale(out.parent)
    stage = staging_dir(out)
    try:
        engine = stage / "engine"
        export_reasoner(model_dir, engine, cfg.reasoner)
        sam_source = SourceCheckpoint(
            "sam2", where, digest, {"format": "LENS checkpoint, sam.* tensors", "image_encoder": encoder}
        )
        sam_cfg = Sam2ExportConfig(
            config=sam2_config, default_mask_mode="single", validation_images=min(max(cfg.validation_images, 1), 3)
        )
        export_sam2_model(sam, engine, sam_cfg, sam_source)
        lens_source = SourceCheckpoint(COMPONENT, where, digest, {"format": "LENS checkpoint"})
        _write_lens_component(engine, parts, context, sam, cfg, lens_source)
        _export_tracker(engine, cfg, sam2_config)
        numbers: dict[str, Any] = {"image_encoder": encoder}
        if cfg.validation_images:
            from .validate import validate_lens

            numbers.update(validate_lens(engine, ckpt, cfg))
        numbers["export_seconds"] = round(time.perf_counter() - start, 1)
        staged = load_manifest(engine, verify="none")
        save_manifest(replace(staged, validation={**staged.validation, COMPONENT: numbers}), engine)
        manifest = publish_engine(engine, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log.info("exported LENS %s to %s in %.0f s", model_dir, out, time.perf_counter() - start)
    return manifest
