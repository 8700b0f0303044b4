"""``export_tracker``: official SAM2 checkpoint -> ``tracker/`` component (SAM2's video memory) of an
engine directory that already holds the ``sam2`` component of the same checkpoint."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from segzero_edge.errors import ExportError
from segzero_edge.manifest import Manifest, SourceCheckpoint, load_manifest, sha256_file
from segzero_edge.reference.sam2_model import load_sam2_model
from segzero_edge.sam2 import Sam2Pipeline
from segzero_edge.sam2.contract import COMPONENT as SAM2_COMPONENT
from segzero_edge.sam2.contract import Sam2Settings, encoder_spec
from segzero_edge.tracker.contract import COMPONENT, IMAGE_ENCODER, IMAGE_ENCODER_FILE, TrackerSettings, graph_specs
from segzero_edge.tracker.pipeline import TrackerPipeline

from ..engine_dir import EngineDirWriter
from ..sam2_export.onnx_export import check_onnx_io, export_image_encoder, feature_shapes
from .onnx_export import export_graphs
from .validate import check_gates, validate_tracker

log = logging.getLogger(__name__)


def tracker_settings(model, config: str, sam2_sha256: str, sam2: Sam2Settings) -> TrackerSettings:
    """The component settings, read from the official model (its video flags as the video builder sets them)."""
    return TrackerSettings(
        config=config,
        sam2_sha256=sam2_sha256,
        image_size=int(model.image_size),
        low_res_size=int(model.image_size) // 4,
        hidden_dim=int(model.hidden_dim),
        mem_dim=int(model.mem_dim),
        feat_size=int(model.sam_prompt_encoder.image_embedding_size[0]),
        num_maskmem=int(model.num_maskmem),
        max_obj_ptrs=int(model.max_obj_ptrs_in_encoder),
        t_diff_max=int(model.max_obj_ptrs_in_encoder) - 1,
        pixel_mean=sam2.pixel_mean,
        pixel_std=sam2.pixel_std,
        multimask_output_in_sam=bool(model.multimask_output_in_sam),
        multimask_output_for_tracking=bool(model.multimask_output_for_tracking),
        multimask_min_pt_num=int(model.multimask_min_pt_num),
        multimask_max_pt_num=int(model.multimask_max_pt_num),
        use_multimask_token_for_obj_ptr=bool(model.sam_mask_decoder.use_multimask_token_for_obj_ptr),
        stability_delta=float(model.sam_mask_decoder.dynamic_multimask_stability_delta),
        stability_threshold=float(model.sam_mask_decoder.dynamic_multimask_stability_thresh),
        binarize_mask_from_pts=bool(model.binarize_mask_from_pts_for_mem_enc),
    )


def _check_model(model) -> None:
    """Refuse configurations whose semantics the graphs do not reproduce (none of the official ones)."""
    problems = []
    if model.memory_temporal_stride_for_eval != 1:
        problems.append(f"memory_temporal_stride_for_eval {model.memory_temporal_stride_for_eval} (needs 1)")
    if not model.directly_add_no_mem_embed:
        problems.append("directly_add_no_mem_embed is off")
    if not model.use_obj_ptrs_in_encoder:
        problems.append("use_obj_ptrs_in_encoder is off")
    if not model.use_mask_input_as_output_without_sam:
        problems.append("use_mask_input_as_output_without_sam is off (masks given as prompts)")
    if model.num_maskmem < 2:
        problems.append(f"num_maskmem {model.num_maskmem} (needs >= 2)")
    if problems:
        raise ExportError(
            "this SAM2 config's video path is not supported: " + "; ".join(problems),
            hint="every official SAM 2 / 2.1 config is supported; use one of them",
        )


def export_tracker(
    checkpoint: str | Path,
    out_dir: str | Path,
    config: str,
    *,
    opset: int = 18,
    max_objects: int = 16,
    max_points: int = 16,
    validation_frames: int = 30,
    min_iou: float = 0.999,
    progress: bool = False,
    own_encoder: bool = False,
) -> Manifest:
    """Export, validate against ``SAM2VideoPredictor`` and write the ``tracker`` component of ``out_dir``.

    Args:
        checkpoint: the official SAM 2 / 2.1 ``.pt`` file the ``sam2`` component of ``out_dir`` was exported from.
        out_dir: an engine directory with that ``sam2`` component.
        config: its official config name or config file.
        opset, max_objects, max_points: as for ``export sam2``.
        validation_frames: length of the validation clip (the gate applies to every frame).
        min_iou: gate on the per-frame mask IoU against the official predictor.
        progress: show progress bars.
        own_encoder: the ``sam2`` component comes from another checkpoint (a LENS checkpoint, whose fine-tuned
            mask decoder makes its high-res features): the tracker gets this checkpoint's image encoder as
            ``tracker.image_encoder`` and encodes its frames with it. Always so on an engine with a ``lens``
            component.

    Raises:
        ManifestError: ``out_dir`` has no sam2 component.
        ExportError: the sam2 component comes from another checkpoint, or the config is unsupported.
        ExportValidationError: a frame's mask differs from the official predictor's; ``out_dir`` is unchanged.
    """
    import torch
    from tqdm import tqdm

    t0 = time.perf_counter()
    checkpoint = Path(checkpoint)
    base = load_manifest(out_dir)
    sam2_settings = Sam2Settings.from_mapping(base.component(SAM2_COMPONENT))
    sha = sha256_file(checkpoint)
    sam2_shas = [s.sha256 for s in base.sources if s.component == SAM2_COMPONENT]
    own_encoder = own_encoder or base.has_component("lens")  # LENS: its sam2 is fine-tuned, never the tracker's
    if sam2_shas != [sha] and not own_encoder:
        raise ExportError(
            f"the sam2 component of {out_dir} was exported from another checkpoint than {checkpoint}",
            hint="run `segzero-edge export sam2` with this checkpoint (it exports the tracker too)",
        )
    predictor = load_sam2_model(checkpoint, config, video=True)
    _check_model(predictor)
    settings = tracker_settings(predictor, config if own_encoder else sam2_settings.config, sha, sam2_settings)
    graphs = graph_specs(settings, max_objects=max_objects, max_points=max_points)
    if own_encoder:
        graphs[IMAGE_ENCODER] = replace(
            encoder_spec(settings.image_size, feature_shapes(predictor)), file=IMAGE_ENCODER_FILE
        )
    sources = [SourceCheckpoint(COMPONENT, str(checkpoint.absolute()), sha, {"config": settings.config})]
    with EngineDirWriter(out_dir, COMPONENT) as writer:
        steps = tqdm(total=len(graphs), desc="exporting tracker graphs", unit="graph", disable=not progress)
        log.info("tracker: exporting %d graphs", len(graphs))
        export_graphs(
            predictor,
            {name: writer.path(spec.file) for name, spec in graphs.items() if name != IMAGE_ENCODER},
            opset=opset,
            max_objects=max_objects,
            max_points=max_points,
            on_graph=steps.update,
        )
        if own_encoder:
            export_image_encoder(predictor, writer.path(IMAGE_ENCODER_FILE), opset=opset)
            steps.update()
        steps.close()
        for spec in graphs.values():
            check_onnx_io(writer.dir / spec.file, spec)
        preview = writer.manifest(settings=settings.to_dict(), graphs=graphs, sources=sources)
        threads = torch.get_num_threads()
        sam2 = Sam2Pipeline(out_dir, manifest=base, device="cpu", backend="ort", threads=threads, verify="none")
        tracker = TrackerPipeline(writer.dir, manifest=preview, sam2=sam2, device="cpu", threads=threads)
        log.info("tracker: validating against the official video predictor")
        numbers: dict[str, Any] = validate_tracker(predictor, tracker, num_frames=validation_frames, progress=progress)
        del tracker, sam2
        numbers["gate_min_iou"] = min_iou
        check_gates(numbers, min_iou)
        numbers["export_seconds"] = round(time.perf_counter() - t0, 1)
        manifest = writer.commit(settings=settings.to_dict(), graphs=graphs, sources=sources, validation=numbers)
    log.info("exported the tracker of %s to %s in %.0f s", config, out_dir, time.perf_counter() - t0)
    return manifest
