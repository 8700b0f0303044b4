"""The tracker graphs against the official SAM2VideoPredictor, frame by frame."""

from __future__ import annotations

import numpy as np

from segzero_edge.manifest import load_manifest
from segzero_edge.tracker.contract import COMPONENT, MASK_DECODER, MEMORY_ATTENTION, MEMORY_ENCODER


def test_export_records_per_frame_parity_with_the_official_predictor(world_engine):
    m = load_manifest(world_engine[0])
    v = m.validation[COMPONENT]
    assert v["frames"] == 30 and v["objects"] == 2
    assert len(v["mask_iou_per_frame"]) == 30
    assert v["mask_iou_min"] >= 0.999 and min(v["mask_iou_per_frame"]) >= 0.999
    assert v["object_presence_agreement"] == 1.0
    for name in (MEMORY_ATTENTION, MASK_DECODER, MEMORY_ENCODER):
        assert (world_engine[0] / m.graph(name).file).is_file()
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
    from segzero_edge.tracker.pipeline import preprocess_frame

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
