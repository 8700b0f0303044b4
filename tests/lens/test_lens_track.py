"""Tracking from a LENS mask: ``export lens --stock-sam2`` adds the stock SAM2's tracker (with its own image
encoder), and ``Segmenter.track`` on a LENS engine starts from the mask ``predict`` gives, as the official
``SAM2VideoPredictor.add_new_mask`` does with it. The LENS checkpoint's SAM2 is the world's 224 px config
(random weights) so that the tracker's validation clip runs in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from segzero_edge.manifest import load_manifest, sha256_file
from segzero_edge.tracker.clips import synthetic_clip

from .conftest import INPUT_SIZE

WORLD_CONFIG = Path(__file__).resolve().parents[2] / "world" / "assets" / "sam2_tiny.yaml"


@pytest.fixture(scope="module")
def track_lens(tmp_path_factory) -> tuple[Path, Path]:
    """(LENS engine with a tracker, the stock SAM2 .pt), exported through the CLI."""
    from segzero_edge.reference.builders.lens import build_tiny_lens

    root = tmp_path_factory.mktemp("lens_track")
    ckpt = build_tiny_lens(root / "ckpt", sam2_config=str(WORLD_CONFIG), stock_sam2=root / "stock.pt", seed=3)
    engine = root / "engine"
    cmd = [sys.executable, "-m", "segzero_edge", "export", "lens", "--model", str(ckpt), "--out", str(engine)]
    cmd += ["--stock-sam2", str(root / "stock.pt"), "--sam2-config", str(WORLD_CONFIG), "--weights", "fp32"]
    cmd += ["--input-size", str(INPUT_SIZE), "--context-weights", "fp32", "--validation-images", "1"]
    cmd += ["--validation-tokens", "8", "--tracker-validation-frames", "8", "--threads", "2"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return engine, root / "stock.pt"


def test_the_tracker_is_the_stock_sam2s_with_its_own_encoder(track_lens):
    from segzero_edge.tracker.contract import COMPONENT, IMAGE_ENCODER, MASK_PROMPT

    engine, stock = track_lens
    m = load_manifest(engine)
    assert set(m.components) == {"reasoner", "sam2", "lens", "tracker"}
    assert IMAGE_ENCODER in m.graphs and MASK_PROMPT in m.graphs
    tracker_source = next(s for s in m.sources if s.component == COMPONENT)
    assert tracker_source.sha256 == sha256_file(stock) == m.component(COMPONENT)["sam2_sha256"]
    assert tracker_source.details["config"] == m.component(COMPONENT)["config"]  # the stock checkpoint's own
    assert next(s for s in m.sources if s.component == "sam2").sha256 != tracker_source.sha256
    v = m.validation[COMPONENT]
    assert v["frames"] == 8 and v["mask_iou_min"] >= 0.999 and v["mask_start"]["mask_iou_min"] >= 0.999


def test_a_lens_track_starts_from_the_lens_mask_like_the_official_predictor(track_lens):
    """Frame by frame against ``SAM2VideoPredictor`` (stock weights) prompted with ``add_new_mask`` of the mask
    ``predict`` returns on frame 0: the mask LENS users would hand to SAM2's video predictor."""
    from segzero_edge import Segmenter
    from segzero_edge.export.tracker_export.validate import _jpeg_round_trip, official_track
    from segzero_edge.reference.sam2_model import load_sam2_model
    from segzero_edge.sam2.host import mask_iou

    engine, stock = track_lens
    clip = synthetic_clip(8, seed=4)
    with tempfile.TemporaryDirectory() as tmp:
        frames = _jpeg_round_trip(clip, Path(tmp))
        with Segmenter(engine, device="cpu", threads=2, max_new_tokens=8) as seg:
            lens_mask = seg.predict(frames[0], "the disc").mask
            track = seg.track(frames[0], "the disc")
            first = track.last
            got = [first.mask] + [track.update(f).mask for f in frames[1:]]
            track.close()
        assert lens_mask.any(), "the tiny LENS head gave an empty mask: pick another seed"
        predictor = load_sam2_model(stock, str(WORLD_CONFIG), video=True)
        ref, _ = official_track(predictor, Path(tmp), [{"mask": lens_mask}])
    assert first.answer is not None and first.frame_index == 0 and "mask_prompt" in first.timings_ms
    ious = [mask_iou(r[0], g) for r, g in zip(ref, got)]
    assert min(ious) >= 0.999, ious


def test_the_track_cli_runs_on_a_lens_engine_and_from_a_mask_file(track_lens, tmp_path):
    from PIL import Image

    engine, _ = track_lens
    clip = synthetic_clip(8, seed=4)
    for i, f in enumerate(clip.frames[:4]):
        Image.fromarray(f).save(tmp_path / f"{i:03d}.png")
    Image.fromarray(clip.masks[0].astype(np.uint8) * 255).save(tmp_path / "target.png")
    base = [sys.executable, "-m", "segzero_edge", "track", str(engine), str(tmp_path)]
    for extra in (["the disc", "--max-new-tokens", "8"], ["--mask", str(tmp_path / "target.png")]):
        jsonl = tmp_path / "out.jsonl"
        done = subprocess.run(
            [*base, *extra, "--jsonl", str(jsonl), "--max-frames", "4", "--threads", "2"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
        assert [r["frame"] for r in lines] == [0, 1, 2, 3] and lines[0]["objects"]


def test_without_a_stock_sam2_there_is_no_tracker_and_track_says_so(lens_engine):
    from segzero_edge import Segmenter
    from segzero_edge.errors import ManifestError

    assert "tracker" not in load_manifest(lens_engine).components
    with Segmenter(lens_engine, device="cpu") as seg, pytest.raises(ManifestError, match="export tracker --checkpoint"):
        seg.track(np.zeros((64, 64, 3), np.uint8), "the cup")


def test_export_tracker_adds_the_tracker_to_a_lens_engine_that_lacks_it(track_lens, tmp_path):
    """The hint of the error above: ``export tracker`` on a LENS engine gives the tracker its own encoder."""
    import shutil
    from dataclasses import replace

    from segzero_edge import Segmenter
    from segzero_edge.manifest import save_manifest
    from segzero_edge.tracker.contract import IMAGE_ENCODER

    source, stock = track_lens
    engine = tmp_path / "engine"
    shutil.copytree(source, engine)
    m = load_manifest(engine)
    stripped = replace(
        m,
        components={k: v for k, v in m.components.items() if k != "tracker"},
        graphs={k: v for k, v in m.graphs.items() if not k.startswith("tracker.")},
        files=tuple(f for f in m.files if not f.path.startswith("tracker/")),
        sources=tuple(s for s in m.sources if s.component != "tracker"),
        validation={k: v for k, v in m.validation.items() if k != "tracker"},
    )
    shutil.rmtree(engine / "tracker")
    save_manifest(stripped, engine)
    cmd = [sys.executable, "-m", "segzero_edge", "export", "tracker", "--checkpoint", str(stock)]
    cmd += ["--config", str(WORLD_CONFIG), "--out", str(engine), "--tracker-validation-frames", "8"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert IMAGE_ENCODER in load_manifest(engine).graphs
    clip = synthetic_clip(8, seed=4)
    with Segmenter(engine, device="cpu", threads=2) as seg:
        track = seg.track(clip.frames[0], mask=clip.masks[0])
        assert track.last.found and "mask_prompt" in track.last.timings_ms
        assert track.update(clip.frames[1]).frame_index == 1
