"""``segzero-edge track`` on a tiny clip: video and folder input, overlay video + JSON lines, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from segzero_edge.tracker.clips import synthetic_clip

av = pytest.importorskip("av", reason="needs PyAV (extra: video)")

CLI = [sys.executable, "-m", "segzero_edge"]


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    from segzero_edge.video import VideoWriter

    root = tmp_path_factory.mktemp("clip")
    clip = synthetic_clip(12, seed=0)
    writer = VideoWriter(root / "clip.mp4", 15)
    (root / "frames").mkdir()
    for i, frame in enumerate(clip.frames):
        writer.write(frame)
        Image.fromarray(frame).save(root / "frames" / f"{i}.png")  # 0..11: numeric order, not 0, 1, 10, 11, 2
    writer.close()
    return root, clip


def _decoded_frames(path):
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_track_a_video_file_writes_an_overlay_video_and_one_json_line_per_frame(tmp_path, world_engine, clip_files):
    root, clip = clip_files
    box = [str(v) for v in clip.box]
    out = tmp_path / "res" / "track.mp4"
    args = [*CLI, "track", str(world_engine[0]), str(root / "clip.mp4"), "--box", *box, "--out", str(out)]
    done = subprocess.run([*args, "--threads", "2"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "frame/s" in done.stderr and "12 in" in done.stdout
    frames = _decoded_frames(out)
    assert len(frames) == 12 and frames[0].shape == (240, 320, 3)
    lines = [json.loads(x) for x in (tmp_path / "res" / "track.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(12))
    assert all(len(r["objects"]) == 1 and "total" in r["timings_ms"] for r in lines)
    assert lines[0]["time_s"] == 0.0 and lines[-1]["time_s"] == pytest.approx(11 / 15, abs=1e-3)
    assert not [p for p in (tmp_path / "res").iterdir() if p.name.startswith(".")]  # no staging left


def test_track_a_folder_of_frames_to_a_gif_in_numeric_order(tmp_path, world_engine, clip_files, tracker):
    root, clip = clip_files
    box = [str(v) for v in clip.box]
    out = tmp_path / "track.gif"
    args = [*CLI, "track", str(world_engine[0]), str(root / "frames"), "--box", *box, "--out", str(out)]
    done = subprocess.run([*args, "--max-frames", "5"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as im:
        assert im.n_frames == 5 and im.size == (320, 240)
    lines = [json.loads(x) for x in (tmp_path / "track.jsonl").read_text().splitlines()]
    # The runtime on the same frames gives the same mask sizes (the folder was read in numeric order).
    from segzero_edge.tracker.track import Track

    track = Track(tracker, (320, 240), reason=None, reason_after_lost=0)
    track.start(clip.frames[0], tracker.encode(clip.frames[0]), 0.0, prompts={"box": [list(clip.box)]})
    pixels = [int(track.last.objects[0].mask.sum())] + [
        int(track.update(f).objects[0].mask.sum()) for f in clip.frames[1:5]
    ]
    assert [r["objects"][0]["mask_pixels"] for r in lines] == pixels


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "x.txt", "--box", "1", "1", "9", "9"], "unknown video type"),
        (["the cup", "--box", "1", "1", "9", "9"], "one of them"),
        ([], "TEXT, --box or --mask"),
        (["--mask", "missing.png"], "cannot read it as an image"),
    ],
)
def test_bad_track_calls_fail_in_one_line(tmp_path, world_engine, clip_files, extra, message):
    root, _ = clip_files
    done = subprocess.run(
        [*CLI, "track", str(world_engine[0]), str(root / "clip.mp4"), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_video_says_what_to_pass(tmp_path, world_engine):
    done = subprocess.run(
        [*CLI, "track", str(world_engine[0]), str(tmp_path / "nope.mp4"), "--box", "1", "1", "9", "9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_mid_stream_keeps_the_frames_tracked_so_far(tmp_path, world_engine):
    """A camera has no last frame: SIGTERM (or Ctrl-C) ends the loop between frames, and the video and JSON
    lines hold every frame tracked until then (rc 130); no staging folder is left."""
    import signal
    import time

    from segzero_edge.video import VideoWriter

    clip = synthetic_clip(40, seed=1)
    writer = VideoWriter(tmp_path / "long.mp4", 30)
    for k in range(200):
        writer.write(clip.frames[k % 40])
    writer.close()
    out = tmp_path / "res" / "t.mp4"
    args = [*CLI, "track", str(world_engine[0]), str(tmp_path / "long.mp4"), "--box", *map(str, clip.box)]
    proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((tmp_path / "res").glob(".t.mp4.partial-*/t.mp4")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "wrote" in stdout and "Traceback" not in stderr
    lines = (tmp_path / "res" / "t.jsonl").read_text().splitlines()
    assert 0 < len(lines) < 200
    assert len(_decoded_frames(out)) == len(lines)
    assert sorted(p.name for p in (tmp_path / "res").iterdir()) == ["t.jsonl", "t.mp4"]
