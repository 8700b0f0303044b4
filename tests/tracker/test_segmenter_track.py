"""``Segmenter.track`` end to end: a tiny random reasoner + the world's tiny SAM2 with its tracker."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from segzero_edge import Segmenter
from segzero_edge.errors import InputError, ManifestError
from segzero_edge.tracker.clips import synthetic_clip


@pytest.fixture(scope="module")
def full_engine(tmp_path_factory, tiny_qwen_dir, world_engine):
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner

    engine = tmp_path_factory.mktemp("track_full") / "engine"
    shutil.copytree(world_engine[0], engine)
    export_reasoner(tiny_qwen_dir, engine, ReasonerExportConfig(weights="fp32", validate="quick", threads=1))
    return engine


def test_track_reasons_once_then_follows_and_re_reasons_on_request(full_engine):
    clip = synthetic_clip(8, seed=0)
    with Segmenter(full_engine, device="cpu", threads=2, max_new_tokens=40) as seg:
        track = seg.track(clip.frames[0], "the bright disc")
        first = track.last
        assert first.frame_index == 0 and first.answer is not None and first.raw_text
        results = [track.update(f) for f in clip.frames[1:4]]
        assert [r.frame_index for r in results] == [1, 2, 3]
        track.reason_again()
        track.update(clip.frames[4])
        assert track.reasoning
        assert track.wait_for_reasoning(timeout=120)
        res = track.update(clip.frames[5])
        assert res.answer is not None and res.frame_index == 5
        if res.answer.ok:  # a random reasoner's box may lie outside: then the track keeps its old prompt
            assert track._bank.prompt_frame == 4
        track.close()


def test_track_from_a_box_needs_no_reasoner_and_bad_calls_say_what_to_do(full_engine, world_engine):
    clip = synthetic_clip(8, seed=0)
    with Segmenter(world_engine[0], device="cpu", threads=2) as seg:  # sam2 + tracker only
        track = seg.track(clip.frames[0], box=list(clip.box), points=[list(p) for p in clip.points])
        assert track.num_objects == 1 and track.update(clip.frames[1]).frame_index == 1
        with pytest.raises(ManifestError, match="reasoner"):
            seg.track(clip.frames[0], "the disc")
        with pytest.raises(InputError, match="either text or box"):
            seg.track(clip.frames[0])
        with pytest.raises(InputError, match="outside the 320x240 frame"):
            seg.track(clip.frames[0], box=[[10, 10, 50, 50], [400, 10, 500, 90]])
        with pytest.raises(InputError, match="labels without points"):
            seg.track(clip.frames[0], box=list(clip.box), labels=[1])
        with pytest.raises(InputError, match="box"):
            seg.track(clip.frames[0], box=[1, 2, 3])
        with pytest.raises(InputError, match="NaN"):
            seg.track(clip.frames[0], box=[1, 2, float("nan"), 4])
    with Segmenter(full_engine, device="cpu", threads=2) as seg:
        with pytest.raises(InputError, match="either text or box"):
            seg.track(clip.frames[0], "the disc", box=list(clip.box))
        with pytest.raises(InputError, match="either text or box"):
            seg.track(clip.frames[0], "the disc", mask=clip.masks[0])
        with pytest.raises(InputError, match="empty"):
            seg.track(clip.frames[0], "   ")


def test_an_engine_without_the_tracker_says_how_to_get_it(tmp_path, world_engine):
    from dataclasses import replace

    from segzero_edge.manifest import load_manifest, save_manifest

    engine = tmp_path / "engine"
    shutil.copytree(world_engine[0], engine)
    m = load_manifest(engine)
    stripped = replace(
        m,
        components={k: v for k, v in m.components.items() if k != "tracker"},
        graphs={k: v for k, v in m.graphs.items() if not k.startswith("tracker.")},
        files=tuple(f for f in m.files if not f.path.startswith("tracker/")),
    )
    shutil.rmtree(engine / "tracker")
    save_manifest(stripped, engine)
    with Segmenter(engine, device="cpu") as seg, pytest.raises(ManifestError, match=r"export tracker"):
        seg.track(np.zeros((64, 64, 3), np.uint8), box=[1, 1, 30, 30])


def test_world_tracking_table_runs_every_way_on_an_engine(full_engine):
    from segzero_edge.world.track_eval import WAYS, _lost_and_reacquired, evaluate_tracking

    report = evaluate_tracking(full_engine, [1], frames=8, reason_after_lost=2, threads=2)
    assert [r["way"] for r in report["rows"]] == list(WAYS)
    for row in report["rows"]:
        assert row["clips"] == 1 and 0.0 <= row["J"] <= 1.0 and 0.0 <= row["F"] <= 1.0
        assert row["per_clip"][0]["frames"] == 8
    # lost = visible but no mask; re-acquired = a mask again after such a run (invisible frames in between)
    on, off = np.ones((2, 2), bool), np.zeros((2, 2), bool)
    masks = [on, off, off, off, on, off]
    gt = [on, on, off, on, on, off]
    assert _lost_and_reacquired(masks, gt) == (2, 1)
