"""``export_sam2``: official SAM2 checkpoint -> ``sam2/`` component of an engine directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from segzero_edge.manifest import Manifest, SourceCheckpoint, sha256_file
from segzero_edge.reference.sam2_model import load_sam2_model
from segzero_edge.reference.torch_sam2 import PIXEL_MEAN, PIXEL_STD
from segzero_edge.sam2 import Sam2Pipeline
from segzero_edge.sam2.configs import is_config_file
from segzero_edge.sam2.contract import (
    COMPONENT,
    DECODER,
    DECODER_FILE,
    ENCODER,
    ENCODER_FILE,
    Sam2Settings,
    decoder_spec,
    encoder_spec,
)

from ..engine_dir import EngineDirWriter
from .config import Sam2ExportConfig
from .onnx_export import check_onnx_io, export_image_encoder, export_mask_decoder, feature_shapes
from .validate import check_gates, validate_sam2

log = logging.getLogger(__name__)


def sam2_settings(model, cfg: Sam2ExportConfig) -> Sam2Settings:
    """The component settings, read from the model (sizes, stability fallback) and ``cfg``."""
    dec = model.sam_mask_decoder
    return Sam2Settings(
        config=cfg.config,
        image_size=int(model.image_size),
        low_res_size=int(model.image_size) // 4,
        pixel_mean=PIXEL_MEAN,
        pixel_std=PIXEL_STD,
        mask_threshold=0.0,
        default_mask_mode=cfg.default_mask_mode,
        stability_delta=float(dec.dynamic_multimask_stability_delta),
        stability_threshold=float(dec.dynamic_multimask_stability_thresh),
        logit_clamp=32.0,
        max_objects=cfg.max_objects,
    )


def export_sam2(
    checkpoint: str | Path, out_dir: str | Path, config: str | Sam2ExportConfig, *, progress: bool = False
) -> Manifest:
    """Export, validate and write the ``sam2`` component of ``out_dir``.

    Args:
        checkpoint: official SAM 2 / 2.1 ``.pt`` file (``{"model": state_dict}``).
        out_dir: engine directory to create, or to update (its other components are kept).
        config: official config name, or a full ``Sam2ExportConfig``.
        progress: show progress bars (the CLI does).

    Returns:
        The manifest written to ``out_dir``.

    Raises:
        InputError: unknown config name (the message lists the valid ones).
        ConfigError: invalid export settings.
        CheckpointError: unreadable checkpoint, or one that does not match the config.
        ExportValidationError: the graphs disagree with the official model; ``out_dir`` is unchanged.
        ExportError, OSError: export failure or full disk; ``out_dir`` is unchanged.
    """
    cfg = config if isinstance(config, Sam2ExportConfig) else Sam2ExportConfig(config=config)
    checkpoint = Path(checkpoint)
    t0 = time.perf_counter()
    model = load_sam2_model(checkpoint, cfg.config)
    extra = {"format": "official SAM2 .pt {'model': state_dict}"}
    source = SourceCheckpoint(COMPONENT, str(Path(checkpoint).absolute()), sha256_file(checkpoint), extra)
    return export_sam2_model(model, out_dir, cfg, source, progress=progress, start=t0)


def export_sam2_model(
    model,
    out_dir: str | Path,
    cfg: Sam2ExportConfig,
    source: SourceCheckpoint,
    *,
    progress: bool = False,
    start: float | None = None,
) -> Manifest:
    """``export_sam2`` for an already loaded official ``SAM2Base`` (e.g. the SAM2 inside a LENS checkpoint).

    Args:
        source: the source record (path, sha256, format); the config and exporter are added to its ``extra``.
    """
    import torch
    from tqdm import tqdm

    t0 = time.perf_counter() if start is None else start
    settings = sam2_settings(model, cfg)
    shapes = feature_shapes(model)
    graphs = {
        ENCODER: encoder_spec(settings.image_size, shapes),
        DECODER: decoder_spec(
            shapes,
            settings.low_res_size,
            objects=(1, 1, cfg.max_objects),
            points=(1, cfg.opt_points, cfg.max_points),
        ),
    }
    extra = {
        **source.details,
        "config": cfg.config,
        "exporter": f"torch.onnx.export(dynamo=True, opset={cfg.opset}), torch {torch.__version__}",
    }
    if is_config_file(cfg.config):  # not one of the package's configs: record which file, exactly
        extra.update(config_file=str(Path(cfg.config).resolve()), config_sha256=sha256_file(cfg.config))
    # The absolute path: `inspect` and the torch backend find it from any working directory.
    sources = [SourceCheckpoint(COMPONENT, source.path, source.sha256, extra)]
    with EngineDirWriter(out_dir, COMPONENT) as writer:
        steps = tqdm(total=2, desc="exporting sam2 graphs", unit="graph", disable=not progress)
        log.info("sam2: exporting the image encoder (%s)", cfg.config)
        export_image_encoder(model, writer.path(ENCODER_FILE), opset=cfg.opset)
        steps.update()
        log.info("sam2: exporting the prompt encoder and mask decoder")
        export_mask_decoder(
            model,
            writer.path(DECODER_FILE),
            opset=cfg.opset,
            max_objects=cfg.max_objects,
            max_points=cfg.max_points,
        )
        steps.update()
        steps.close()
        for spec in graphs.values():
            check_onnx_io(writer.dir / spec.file, spec)
        preview = writer.manifest(settings=settings.to_dict(), graphs=graphs, sources=sources)
        runtime = Sam2Pipeline(
            writer.dir, manifest=preview, device="cpu", backend="ort", threads=torch.get_num_threads()
        )
        log.info("sam2: validating the graphs against the official model")
        numbers: dict[str, Any] = validate_sam2(model, runtime, cfg, progress=progress)
        del runtime
        check_gates(numbers, cfg)
        numbers["export_seconds"] = round(time.perf_counter() - t0, 1)
        manifest = writer.commit(settings=settings.to_dict(), graphs=graphs, sources=sources, validation=numbers)
    log.info("exported %s to %s in %.0f s", cfg.config, out_dir, time.perf_counter() - t0)
    return manifest
