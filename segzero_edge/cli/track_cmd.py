"""``segzero-edge track ENGINE_DIR VIDEO "TEXT"``: reason once, track every frame, write an overlay video."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import publish_modes, remove_stale, staging_dir, writable_parent
from ..ros.bag import is_bag
from .bag_run import add_bag_arguments, run_bag
from .base import DEVICE_HELP, Command, positive_int
from .frame_loop import TrackSteps, frame_loop
from .options import add_option_arguments, option_values

#: The reasoning options this command exposes (``SegmenterOptions.names()``).
OPTIONS = (
    "max_new_tokens",
    "thinking_budget",
    "constrained",
    "max_objects",
    "allow_empty",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "seed",
)
OUT_SUFFIXES = (".mp4", ".mkv", ".mov", ".gif")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine_dir", type=Path, help="engine directory with the reasoner, sam2 and tracker components")
    parser.add_argument(
        "video",
        help="a video file (anything FFmpeg decodes), a folder of images (sorted by name), a camera index, or a "
        "ROS bag (ROS 1 .bag, ROS 2 bag folder, .mcap, .db3; see --topic)",
    )
    parser.add_argument(
        "text", nargs="?", default=None, help='the instruction, e.g. "the cup the robot should pick up" (or --box)'
    )
    parser.add_argument(
        "--box",
        type=float,
        nargs=4,
        action="append",
        metavar=("X1", "Y1", "X2", "Y2"),
        help="track this box of the first frame instead of reasoning (repeat for several objects)",
    )
    parser.add_argument(
        "--mask",
        type=Path,
        action="append",
        metavar="IMAGE",
        help="track this mask of the first frame instead of reasoning: an image of the frame's size whose "
        "non-zero pixels are the object (repeat for several objects)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="overlay video to write (.mp4/.mkv/.mov: H.264; .gif), with per-frame results in the same name "
        "with .jsonl; for a ROS bag, an .mcap with TOPIC/mask (mono8 Image) and TOPIC/result (JSON String); "
        "without --out nothing is written",
    )
    parser.add_argument("--jsonl", type=Path, default=None, help="per-frame JSON lines here instead (needs no --out)")
    parser.add_argument("--max-frames", type=positive_int, default=None, help="stop after this many frames")
    parser.add_argument(
        "--reason-after-lost",
        type=int,
        default=15,
        metavar="K",
        help="re-reason (in the background) after K frames with the object lost; 0: never (default: %(default)s)",
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per ONNX Runtime session")
    add_bag_arguments(parser, every=False)
    add_option_arguments(parser, OPTIONS)


def _outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    video = jsonl = None
    if args.out is not None:
        video = writable_parent(args.out)
        if video.suffix.lower() == ".mcap":
            raise InputError(f"--out {video.name}: MCAP results need a ROS bag as input", hint="write an .mp4")
        if video.suffix.lower() not in OUT_SUFFIXES:
            raise InputError(f"--out {video.name}: unknown video type", hint=f"use one of {', '.join(OUT_SUFFIXES)}")
        jsonl = video.with_suffix(".jsonl")
    if args.jsonl is not None:
        jsonl = writable_parent(args.jsonl)
    for path in (video, jsonl):
        if path is not None and str(args.video) != "" and Path(args.video).exists() and path.exists():
            with contextlib.suppress(OSError):
                if path.samefile(args.video):
                    raise InputError(f"{path} is the input video", hint="write the results to another file")
    return video, jsonl


def _record(i: int, t: float, res) -> dict:
    return {
        "frame": i,
        "time_s": round(t, 4),
        "found": res.found,
        "lost": res.lost,
        "error": res.error,
        "reprompted": "reprompt" in res.timings_ms,  # a background answer was applied (not just received)
        "objects": [
            {
                "box": o.box,
                "score": round(o.score, 5),
                "object_score": round(o.object_score, 4),
                "lost": o.lost,
                "mask_pixels": int(o.mask.sum()),
            }
            for o in res.objects
        ],
        "reasoning": res.reasoning,
        "timings_ms": {k: round(v, 2) for k, v in res.timings_ms.items()},
    }


def _run(args: argparse.Namespace) -> int:
    from ..segmenter import Segmenter
    from ..video import VideoWriter, open_frames

    if (args.text is not None) + (args.box is not None) + (args.mask is not None) != 1:
        raise InputError(
            "give the instruction TEXT, --box or --mask (one of them)",
            hint='e.g. segzero-edge track ENGINE v.mp4 "the cup"',
        )
    if is_bag(args.video):
        if args.mask or args.jsonl:
            raise InputError("--mask and --jsonl are for videos; a bag's results go to --out result.mcap")
        kwargs = {"device": args.device, "threads": args.threads, **option_values(args, OPTIONS)}
        return run_bag(args, Path(args.video), mode="track", segmenter_kwargs=kwargs)
    if args.topic is not None:
        raise InputError(f"--topic is for ROS bags; {args.video} is not one", hint="drop --topic")
    masks = _read_masks(args.mask) if args.mask else None
    video_path, jsonl_path = _outputs(args)
    stage = None
    if video_path or jsonl_path:
        target = video_path or jsonl_path
        remove_stale(target.parent)
        stage = staging_dir(target)
    try:
        with (
            open_frames(args.video) as source,
            Segmenter(args.engine_dir, device=args.device, threads=args.threads, **option_values(args, OPTIONS)) as seg,
        ):
            writer = VideoWriter(stage / video_path.name, source.fps) if video_path else None
            lines = (stage / jsonl_path.name).open("w") if jsonl_path else None
            try:
                stats = _track_frames(args, source, seg, writer, lines, masks)
            finally:
                if writer is not None:
                    writer.close()
                if lines is not None:
                    lines.close()
        if stage is not None:
            publish_modes(stage)
            for path in (video_path, jsonl_path):
                if path is not None:
                    os.replace(stage / path.name, path)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    n, seconds, lost, reprompts, interrupted = stats
    fps = n / max(seconds, 1e-9)
    print(f"frames    : {n} in {seconds:.1f} s ({fps:.1f} fps), lost in {lost}, re-prompted {reprompts}")
    if interrupted:
        print("stopped   : interrupted; the outputs hold the frames tracked until then", file=sys.stderr)
    for path in (video_path, jsonl_path):
        if path is not None:
            print(f"wrote     : {path}")
    return 130 if interrupted else 0


def _read_masks(paths: list[Path]) -> np.ndarray:
    """``--mask`` images -> ``[N, H, W]`` bool (non-zero pixels; sizes are checked against the first frame)."""
    from PIL import Image, UnidentifiedImageError

    masks = []
    for path in paths:
        try:
            with Image.open(path) as im:
                masks.append(np.asarray(im.convert("L")) > 0)
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"--mask {path}: cannot read it as an image ({exc})", hint="pass a PNG mask") from exc
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise InputError(
            f"the --mask images have different sizes {sorted(shapes)}", hint="give masks of the frame's size"
        )
    return np.stack(masks)


def _track_frames(args, source, seg, writer, lines, masks=None) -> tuple[int, float, int, int, bool]:
    """Track every frame of ``source`` (``frame_loop``). Returns frames, seconds, lost frames, re-prompts,
    interrupted."""
    from ..overlay import draw_objects

    total = min(source.count, args.max_frames) if source.count and args.max_frames else source.count
    counts = {"lost": 0, "reprompts": 0}

    def on_result(item, res) -> None:
        i, t, rgb = item
        if writer is not None:
            writer.write(np.asarray(draw_objects(rgb, res.objects, label=f"{i}")))
        if lines is not None:
            lines.write(json.dumps(_record(i, t, res)) + "\n")
        counts["lost"] += res.lost
        counts["reprompts"] += "reprompt" in res.timings_ms

    start = {"box": args.box, "mask": masks, "reason_after_lost": args.reason_after_lost}
    steps = TrackSteps(seg, text=args.text, **start)
    try:
        frames = itertools.islice(source, args.max_frames)
        n, seconds, interrupted = frame_loop(
            frames, lambda item: steps(item[2]), on_result, total=total or args.max_frames, desc="tracking"
        )
    finally:
        steps.close()
    if n == 0:
        raise InputError(f"{source.name} has no frames", hint="pass a video with at least one frame")
    return n, seconds, counts["lost"], counts["reprompts"], interrupted


COMMAND = Command(
    name="track",
    add_arguments=_add_arguments,
    run=_run,
    intermixed=True,
    description="Reason once about the first frame, then follow the object through a video, a folder of "
    "frames, a camera or a ROS bag's image topic with SAM2's video memory, re-reasoning in the background when "
    "it is lost. With --out it writes an overlay video and per-frame JSON lines (for a bag: an MCAP file with "
    "a mask image and a JSON result per frame, stamped as the input); a progress bar shows the frames per second.",
)
