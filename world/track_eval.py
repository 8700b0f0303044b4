"""Tracking accuracy on the world's clips: J and F as DAVIS defines them, per way of getting a mask per frame.

For each test clip (``clips.generate_clip`` of a seed) and its attribute query:

* ``gt prompt + track``: the target's ground-truth prompt on frame 0, then ``Track.update`` (the tracker alone);
* ``reason once + track``: ``Segmenter.track(frame0, text)``, never re-reasoning;
* ``reason + track + re-reason``: the same, re-reasoning in the background after ``reason_after_lost`` lost
  frames (waited for before the next frame, so the result does not depend on the machine's speed);
* ``predict every frame``: ``Segmenter.predict`` on each frame.

Per way: mean J, F and J&F over clips (each clip's mean over its frames), frames where the target was
reported lost (no mask) while visible, and re-acquisitions (a mask again after a lost run, while visible).

    python -m segzero_edge.world track-accuracy [--clips 12] [--sam2 PT] [--work-dir .cache/world_tracking]

exports the world engine (``demo.export_world_engine``, INT4 reasoner, cached) and writes
``benchmarks/results/world_tracking.{json,md}``. With ``--family lens`` it runs the world LENS engine instead
(``lens_accuracy.export_lens_engine``: the shipped LENS head, INT4 reasoner, float context, and the world
SAM2's tracker with its own image encoder), whose tracks start from the LENS mask
(``world_tracking_lens.{json,md}``). The test clips are seeds ``TEST_SEEDS`` onwards; the
video-path trainer never draws a clip from that range.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.evaluation.video import clip_scores

from .clips import generate_clip
from .sam2_data import gt_prompt

#: First seed of the test clips (``sam2_video_train.window`` skips ``TEST_SEEDS`` .. ``TEST_SEEDS + 9999``).
TEST_SEEDS = 900_000
WAYS = ("gt prompt + track", "reason once + track", "reason + track + re-reason", "predict every frame")


def _run_way(seg, way: str, clip, reason_after_lost: int) -> tuple[list[np.ndarray], float]:
    frames = clip.frames
    t0 = time.perf_counter()
    if way == "predict every frame":
        masks = [seg.predict(f, clip.query.text).mask for f in frames]
        return masks, time.perf_counter() - t0
    if way == "gt prompt + track":
        p = gt_prompt(clip.target_masks[0])
        track = seg.track(frames[0], box=p.box.tolist(), points=p.points.tolist())
    else:
        again = reason_after_lost if way == "reason + track + re-reason" else 0
        track = seg.track(frames[0], clip.query.text, reason_after_lost=again)
    masks = [track.last.mask]
    for f in frames[1:]:
        masks.append(track.update(f).mask)
        track.wait_for_reasoning()  # deterministic: the answer applies on the next frame, whatever the speed
    track.close()
    return masks, time.perf_counter() - t0


def _lost_and_reacquired(masks: list[np.ndarray], gt: np.ndarray) -> tuple[int, int]:
    lost = reacquired = 0
    was_lost = False
    for m, g in zip(masks, gt):
        visible, found = bool(g.any()), bool(m.any())
        if visible and not found:
            lost += 1
        if visible and found and was_lost:
            reacquired += 1
        if visible:  # while the target is out of sight, a lost run neither ends nor starts
            was_lost = not found
    return lost, reacquired


def evaluate_tracking(
    engine_dir,
    seeds,
    *,
    frames: int = 30,
    reason_after_lost: int = 3,
    threads: int | None = None,
    ways: tuple[str, ...] = WAYS,
    **options: Any,
) -> dict[str, Any]:
    """The table's numbers for ``seeds`` (one clip each) on ``engine_dir`` (reasoner + sam2 + tracker), for
    ``ways`` (some of ``WAYS``); ``options``: ``SegmenterOptions`` fields."""
    from segzero_edge import Segmenter

    per_way: dict[str, list[dict]] = {w: [] for w in ways}
    with Segmenter(engine_dir, device="cpu", threads=threads, cache_size=0, **options) as seg:
        for seed in seeds:
            clip = generate_clip(int(seed), frames)
            gt = clip.target_masks
            for way in ways:
                masks, seconds = _run_way(seg, way, clip, reason_after_lost)
                lost, reacquired = _lost_and_reacquired(masks, gt)
                per_way[way].append(
                    {"seed": int(seed), **clip_scores(masks, gt), "lost": lost, "reacquired": reacquired, "s": seconds}
                )
    rows = []
    for way, clips in per_way.items():
        rows.append(
            {
                "way": way,
                "clips": len(clips),
                "J": float(np.mean([c["J"] for c in clips])),
                "F": float(np.mean([c["F"] for c in clips])),
                "J&F": float(np.mean([c["J&F"] for c in clips])),
                "lost_frames": int(sum(c["lost"] for c in clips)),
                "reacquired": int(sum(c["reacquired"] for c in clips)),
                "ms_per_frame": 1e3 * float(np.sum([c["s"] for c in clips])) / (frames * len(clips)),
                "per_clip": clips,
            }
        )
    return {"engine": str(engine_dir), "frames": frames, "seeds": [int(s) for s in seeds], "rows": rows}


def write_markdown(report: dict[str, Any], path: Path) -> None:
    """The table of ``report`` (``evaluate_tracking``'s, with ``command`` and ``machine``) as markdown."""
    lens = report.get("family") == "lens"
    what = "the LENS engine (tracks start from the LENS mask)" if lens else "the Seg-Zero engine"
    lines = [
        f"# Tracking on the small world's test clips ({len(report['seeds'])} clips of {report['frames']} frames),",
        f"{what}",
        "",
        f"`{report['command']}` on {report['machine']}, {report['date']}. J (region IoU) and F (contour",
        "accuracy) as DAVIS defines them, per clip averaged over its frames (a frame where the target is out of",
        "view scores 1 when no mask is reported, else 0), then over clips. *lost*: frames with the target in view",
        "and no mask; *re-acquired*: a mask again after such a run.",
        "",
        "| way | J | F | J&F | lost frames | re-acquired | ms / frame |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['way']} | {r['J']:.3f} | {r['F']:.3f} | {r['J&F']:.3f} | {r['lost_frames']} "
            f"| {r['reacquired']} | {r['ms_per_frame']:.0f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from . import ASSETS
    from .demo import export_world_engine

    parser = argparse.ArgumentParser(
        prog="python -m segzero_edge.world track-accuracy",
        description="J and F of the four ways of following the target through the world's test clips "
        "(ground-truth prompt + tracker, reason once + tracker, + re-reasoning on loss, predict every frame) "
        "on the world engine; writes OUT_DIR/NAME.json and .md.",
    )
    parser.add_argument("--clips", type=int, default=12, help="test clips (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip (default: %(default)s)")
    parser.add_argument("--sam2", type=Path, default=ASSETS / "sam2_tiny.pt", help="world SAM2 checkpoint")
    parser.add_argument("--reason-after-lost", type=int, default=3, help="lost frames before re-reasoning")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/world_tracking"), help="engine cache")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--family",
        choices=("segzero", "lens"),
        default="segzero",
        help="segzero: the world engine (answer's box and points start the track); lens: the world LENS engine "
        "(its mask starts the track; --sam2 is then ignored) (default: %(default)s)",
    )
    parser.add_argument("--name", default=None, help="results file stem (default: world_tracking[_lens])")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks") / "results")
    args = parser.parse_args(argv)
    if args.clips < 1 or args.frames < 8 or args.reason_after_lost < 0:
        parser.error("need --clips >= 1, --frames >= 8 (a world clip's minimum) and --reason-after-lost >= 0")
    options: dict[str, Any] = {}
    if args.family == "lens":
        from .lens_accuracy import MAX_NEW_TOKENS, export_lens_engine
        from .lens_head import build_world_lens_checkpoint

        checkpoint = args.work_dir / "lens_checkpoint"
        shutil.rmtree(checkpoint, ignore_errors=True)  # rebuilt from the shipped head (same bytes: engine kept)
        build_world_lens_checkpoint(checkpoint)
        engine, _ = export_lens_engine(args.work_dir / "engine_lens_int4", checkpoint, "int4")
        options["max_new_tokens"] = MAX_NEW_TOKENS
    else:
        engine, _ = export_world_engine(args.work_dir / "engine_int4", "int4", sam2=args.sam2)
    name = args.name or ("world_tracking_lens" if args.family == "lens" else "world_tracking")
    seeds = range(TEST_SEEDS, TEST_SEEDS + args.clips)
    report = evaluate_tracking(
        engine, seeds, frames=args.frames, reason_after_lost=args.reason_after_lost, threads=args.threads, **options
    )
    report["family"] = args.family
    report["command"] = " ".join(["python -m segzero_edge.world track-accuracy", *(argv or [])])
    report["machine"] = f"{platform.processor() or platform.machine()}, {args.threads} threads"
    report["date"] = datetime.date.today().isoformat()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, args.out_dir / f"{name}.md")
    print((args.out_dir / f"{name}.md").read_text())
    return 0
