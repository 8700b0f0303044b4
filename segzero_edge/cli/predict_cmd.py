"""``segzero-edge predict ENGINE_DIR IMAGE "TEXT"``: segment one image, print the answer, write an overlay."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..files import output_dir
from ..ros.bag import is_bag
from .bag_run import add_bag_arguments, run_bag
from .base import DEVICE_HELP, Command
from .options import add_lens_argument, add_option_arguments, option_values

#: The request options this command exposes (``SegmenterOptions.names()``).
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
    "mask_mode",
    "overlap",
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine_dir", type=Path, help="engine directory written by `segzero-edge export`")
    parser.add_argument(
        "image", type=Path, help="image file (PNG, JPEG, ...), or a ROS bag (.bag, ROS 2 bag folder, .mcap, .db3)"
    )
    parser.add_argument("text", help='the instruction, e.g. "the cup the robot should pick up"')
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write <image>.overlay.png and <image>.segzero.json into this folder; for a ROS bag, an .mcap "
        "file with TOPIC/mask and TOPIC/result (without --out nothing is written)",
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "ort", "trt", "torch"],
        help="ort: ONNX Runtime; trt: SAM2 from the TensorRT engines of `segzero-edge build` "
        "(reasoner on ONNX Runtime); torch: the PyTorch reference (transformers + official sam2) "
        "run from the engine's source checkpoints; auto: trt when such engines and TensorRT are "
        "present, else ort (default: %(default)s)",
    )
    parser.add_argument(
        "--reasoner-checkpoint",
        type=Path,
        default=None,
        help="--backend torch: the Hugging Face Qwen2.5-VL directory the engine was exported from "
        "(default: the source path recorded in manifest.json)",
    )
    parser.add_argument(
        "--sam2-checkpoint",
        type=Path,
        default=None,
        help="--backend torch: the official SAM2 .pt the engine was exported from "
        "(default: the source path recorded in manifest.json)",
    )
    parser.add_argument(
        "--torch-weights",
        default="auto",
        choices=["auto", "fp32", "int8", "int4"],
        help="--backend torch: reasoner weights (optimum-quanto weight-only int8/int4); auto: "
        "int4/int8 when the engine's decoder is, else fp32 (default: %(default)s)",
    )
    add_option_arguments(parser, OPTIONS)
    add_lens_argument(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per ONNX Runtime session (torch threads with --backend torch; default: one per core)",
    )
    parser.add_argument(
        "--sam2-threads", type=int, default=None, help="CPU threads of the SAM2 sessions only (default: --threads)"
    )
    parser.add_argument("--stream", action="store_true", help="print the generated text as it is produced")
    add_bag_arguments(parser, every=True)


def _run(args: argparse.Namespace) -> int:
    from ..frame import load_image
    from ..segmenter import Segmenter

    if is_bag(args.image):
        if args.backend == "torch" or args.stream:
            raise InputError("--backend torch and --stream are for single images, not bags")
        kwargs = {"device": args.device, "backend": args.backend, "threads": args.threads}
        kwargs |= {"sam2_threads": args.sam2_threads, "lens_context": args.lens_context, **option_values(args, OPTIONS)}
        return run_bag(args, args.image, mode="predict", segmenter_kwargs=kwargs)
    if args.topic is not None or args.every != 1:
        raise InputError(f"--topic and --every are for ROS bags; {args.image} is not one", hint="drop them")
    out_dir = None if args.out is None else output_dir(args.out, inputs=(args.image, args.engine_dir))
    rgb = load_image(args.image)
    on_text = (lambda piece: print(piece, end="", flush=True)) if args.stream else None
    torch_args = (
        {
            "reasoner_checkpoint": args.reasoner_checkpoint,
            "sam2_checkpoint": args.sam2_checkpoint,
            "torch_weights": args.torch_weights,
        }
        if args.backend == "torch"
        else {}
    )
    with Segmenter(
        args.engine_dir,
        device=args.device,
        backend=args.backend,
        threads=args.threads,
        sam2_threads=args.sam2_threads,
        **option_values(args, OPTIONS),
        **torch_args,
        lens_context=args.lens_context,
    ) as seg:
        res = seg.predict(rgb, args.text, on_text=on_text)
    if args.stream:
        print()
    print_result(res)
    if out_dir is not None:
        overlay_path, json_path, _ = save_result(
            rgb, res, image=args.image, text=args.text, out_dir=out_dir, stem=args.image.stem
        )
        print(f"wrote     : {overlay_path} and {json_path}")
    return 0


def save_result(
    rgb, res, *, image: Path | str, text: str, out_dir: Path, stem: str, extra: dict | None = None
) -> tuple[Path, Path, dict]:
    """Write ``out_dir/<stem>.overlay.png`` (``overlay.draw_segmentation``) and ``<stem>.segzero.json`` for a
    ``Segmentation`` of the ``(H, W, 3)`` uint8 image ``rgb``. Returns both paths and the JSON record.

    The suffixes keep the results apart from a dataset's own files (a ReasonSeg folder holds ``<stem>.json``
    annotations, which a result must never replace); the dataset readers skip both."""
    import numpy as np

    from ..overlay import OVERLAY_SUFFIX, RESULT_SUFFIX, draw_segmentation

    overlay_path = out_dir / f"{stem}{OVERLAY_SUFFIX}"
    json_path = out_dir / f"{stem}{RESULT_SUFFIX}"
    draw_segmentation(rgb, res).save(overlay_path)
    record = {
        "image": str(image),
        "text": text,
        "found": res.found,
        "error": res.error,
        "box": res.box,
        "points": res.points,
        "score": res.score,
        "mask_pixels": int(np.count_nonzero(res.mask)),
        "image_size": [rgb.shape[1], rgb.shape[0]],
        "reasoning": res.reasoning,
        "raw_text": res.raw_text,
        "objects": [
            {
                "box": o.prompt_box,
                "points": o.points,
                "score": o.score,
                "mask_pixels": int(np.count_nonzero(o.mask)),
                "lost": o.lost,
            }
            for o in res.objects
        ],
        "timings_ms": dict(res.timings_ms),
        "overlay": str(overlay_path),
        **(extra or {}),
    }
    json_path.write_text(json.dumps(record, indent=2) + "\n")
    return overlay_path, json_path, record


def print_result(res) -> None:
    """The human-readable summary of a ``Segmentation``: reasoning, box, points, score, timings."""
    print(f"reasoning : {res.reasoning!r}")
    if res.found and len(res.objects) > 1:
        print(f"objects   : {len(res.objects)}, mask {int(res.mask.sum())} pixels in all")
        for i, o in enumerate(res.objects):
            box = ", ".join(f"{v:.0f}" for v in o.prompt_box) if o.prompt_box else "-"
            pts = "  ".join(f"({x:.0f}, {y:.0f})" for x, y in o.points)
            state = "no mask" if o.lost else f"score {o.score:.3f}, {int(o.mask.sum())} pixels"
            print(f"  [{i}] box [{box}]   points: {pts}   {state}")
    elif res.found:
        box = ", ".join(f"{v:.0f}" for v in res.box)
        pts = "  ".join(f"({x:.0f}, {y:.0f})" for x, y in res.points)
        print(f"box       : [{box}]   points: {pts}")
        print(f"score     : {res.score:.3f} (SAM2 predicted IoU), mask {int(res.mask.sum())} pixels")
    else:
        print(f"not found : {res.error}")
    print("timings ms: " + ", ".join(f"{k} {v:.0f}" for k, v in res.timings_ms.items()))


COMMAND = Command(
    name="predict",
    add_arguments=_add_arguments,
    run=_run,
    description="Segment the object an instruction refers to: prints the reasoning, box, points, score and "
    "per-stage timings (every object's for multi-object engines); with --out DIR it also writes an overlay PNG (mask "
    "tinted and outlined, box and points drawn, one colour per object) "
    "and a JSON file there.",
)
