"""The tracker graphs against the official SAM2VideoPredictor, frame by frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segzero_edge.manifest import load_manifest
from segzero_edge.tracker.contract import (
    COMPONENT,
    IMAGE_ENCODER,
    MASK_DECODER,
    MASK_PROMPT,
    MEMORY_ATTENTION,
    MEMORY_ENCODER,
)


def test_export_records_per_frame_parity_with_the_official_predictor(world_engine):
    m = load_manifest(world_engine[0])
    v = m.validation[COMPONENT]
    assert v["frames"] == 30 and v["objects"] == 2
    assert len(v["mask_iou_per_frame"]) == 30
    assert v["mask_iou_min"] >= 0.999 and min(v["mask_iou_per_frame"]) >= 0.999
    assert v["object_presence_agreement"] == 1.0
    start = v["mask_start"]  # the same clip started from masks (SAM2's add_new_mask)
    assert len(start["mask_iou_per_frame"]) == 30 and start["mask_iou_min"] >= 0.999
    assert start["object_presence_agreement"] == 1.0 and start["present_frames"][0] > 0
    for name in (MEMORY_ATTENTION, MASK_DECODER, MEMORY_ENCODER, MASK_PROMPT):
        assert (world_engine[0] / m.graph(name).file).is_file()
    assert IMAGE_ENCODER not in m.graphs  # sam2 and tracker come from one checkpoint: one encoder
    settings = m.component(COMPONENT)
    assert settings["num_maskmem"] == 7 and settings["max_obj_ptrs"] == 16 and settings["t_diff_max"] == 15
    assert settings["sam2_sha256"] == next(s.sha256 for s in m.sources if s.component == "sam2")


def test_another_clip_and_seed_stay_at_parity(world_engine, tracker):
    """A fresh run (not the export's numbers): 40 frames of another seeded clip, two objects."""
    from segzero_edge.export.tracker_export.validate import validate_tracker
    from segzero_edge.reference.sam2_model import load_sam2_model

    predictor = load_sam2_model(world_engine[1], str(tracker.settings.config), video=True)
    numbers = validate_tracker(predictor, tracker, num_frames=40, seed=3)
    assert numbers["frames"] == 40
    assert numbers["mask_iou_min"] >= 0.999, numbers["mask_iou_per_frame"]
    assert numbers["object_score_max_abs_diff"] < 1e-3
    assert numbers["mask_start"]["mask_iou_min"] >= 0.999, numbers["mask_start"]["mask_iou_per_frame"]


def test_absent_objects_give_no_mask_on_both_sides(absent_engine):
    """With an object-score head that says 'absent', the official predictor and the runtime both return
    empty masks on every frame (the no-object pointer and memory embedding paths), and agree."""
    v = load_manifest(absent_engine[0]).validation[COMPONENT]
    assert v["present_frames"] == [0, 0]
    assert v["object_presence_agreement"] == 1.0 and v["mask_iou_min"] == 1.0


def test_frames_are_preprocessed_like_the_official_video_loader(tmp_path, tracker):
    import torch
    from PIL import Image
    from sam2.utils.misc import load_video_frames

    from segzero_edge.tracker.clips import synthetic_clip
    from segzero_edge.tracker.preprocess import preprocess_frame

    clip = synthetic_clip(8, (301, 177), seed=5)
    for i, f in enumerate(clip.frames):
        Image.fromarray(f).save(tmp_path / f"{i}.jpg")
    s = tracker.settings
    images, h, w = load_video_frames(str(tmp_path), s.image_size, offload_video_to_cpu=True, compute_device="cpu")
    assert (w, h) == (301, 177)
    for i in range(8):
        with Image.open(tmp_path / f"{i}.jpg") as im:
            ours = preprocess_frame(np.asarray(im.convert("RGB")), s.image_size, s.pixel_mean, s.pixel_std)
        np.testing.assert_array_equal(ours[0], images[i].to(torch.float32).numpy())


def test_sam2_0_semantics_stay_at_parity(tmp_path):
    """SAM 2.0 configs differ in the video path: no temporal encoding of the object pointers, no no-object
    spatial embedding, unsigned distances. The world config with SAM 2.0's video flags (as
    configs/sam2/sam2_hiera_t.yaml sets them), random weights, exported and checked against the official
    predictor over 30 frames."""
    import torch
    from omegaconf import OmegaConf

    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    from segzero_edge.export.tracker_export.export import export_tracker
    from segzero_edge.reference.builders.sam2 import build_sam2_model

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "world" / "assets" / "sam2_tiny.yaml")
    for key in ("no_obj_embed_spatial", "add_tpos_enc_to_obj_ptrs", "proj_tpos_enc_in_obj_ptrs"):
        cfg.model[key] = False
    cfg.model.use_signed_tpos_enc_to_obj_ptrs = False
    config = tmp_path / "sam2_0_world.yaml"
    OmegaConf.save(cfg, config)
    torch.set_num_threads(2)
    model = build_sam2_model(str(config), seed=1)
    assert model.no_obj_embed_spatial is None and not model.add_tpos_enc_to_obj_ptrs
    ckpt = tmp_path / "sam2.pt"
    torch.save({"model": model.state_dict()}, ckpt)
    engine = tmp_path / "engine"
    export_sam2(ckpt, engine, Sam2ExportConfig(config=str(config), validation_images=1))
    v = export_tracker(ckpt, engine, str(config), validation_frames=30).validation[COMPONENT]
    assert v["frames"] == 30 and v["mask_iou_min"] >= 0.999 and v["object_presence_agreement"] == 1.0
