"""``segzero-edge demo`` (``make demo``): the whole pipeline on tiny random models, offline.

1. build a tiny random Qwen2.5-VL checkpoint and a random SAM2 hiera-t checkpoint (cached),
2. export both into one engine directory (INT4 reasoner, validated; cached),
3. run ``Segmenter.predict`` on the image that ships with the repository,
4. write the overlay PNG and the JSON, and say where they are.

The weights are random, so the answer is meaningless; the point is that every stage runs for real.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from segzero_edge.cli.base import Command
from segzero_edge.errors import SegZeroError
from segzero_edge.manifest import load_manifest

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = REPO_ROOT / "assets" / "demo_scene.png"

REAL_COMMANDS = """\
With real checkpoints (downloaded yourself; nothing here fetches weights):
  segzero-edge export reasoner --model path/to/Seg-Zero-7B --out engines/segzero-7b --weights int4
  segzero-edge export sam2 --checkpoint path/to/sam2_hiera_large.pt --config sam2_hiera_l --out engines/segzero-7b
  segzero-edge build engines/segzero-7b            # on the GPU that will run it (TensorRT)
  segzero-edge predict engines/segzero-7b frame.png "the cup the robot should pick up\""""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/demo"),
                        help="where the tiny checkpoints and the engine directory are cached (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("demo_out"),
                        help="folder for the overlay PNG and the JSON (default: %(default)s)")
    parser.add_argument("--image", type=Path, default=None, help="image to segment (default: the bundled scene)")
    parser.add_argument("--text", default=None, help="instruction (default: the bundled scene's query)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the checkpoints and the engine directory")


def _engine_ok(engine: Path) -> bool:
    try:
        m = load_manifest(engine, verify="size")
    except SegZeroError:
        return False
    return m.has_component("reasoner") and m.has_component("sam2")


def build_demo_engine(work: Path, *, rebuild: bool = False) -> Path:
    """Tiny random checkpoints and their engine directory under ``work`` (reused when present)."""
    from .builders import build_sam2_checkpoint, build_tiny_qwen25vl
    from .reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from .sam2_export import Sam2ExportConfig, export_sam2

    engine = work / "engine"
    if _engine_ok(engine) and not rebuild:
        log.info("using the cached engine directory %s", engine)
        return engine
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    reasoner_ckpt = build_tiny_qwen25vl(work / "tiny-qwen2.5-vl", "tiny", input_size=224, seed=0, overwrite=True)
    sam2_ckpt = build_sam2_checkpoint(work / "sam2.1_hiera_t.random.pt", "sam2.1_hiera_t", seed=0)
    log.info("built random checkpoints in %.1f s", time.perf_counter() - t0)
    export_reasoner(reasoner_ckpt, engine, ReasonerExportConfig(weights="int4", block_size=32, validate="quick"))
    export_sam2(sam2_ckpt, engine, Sam2ExportConfig(config="sam2.1_hiera_t", validation_images=1), progress=True)
    log.info("exported %s in %.1f s", engine, time.perf_counter() - t0)
    return engine


def _run(args: argparse.Namespace) -> int:
    from segzero_edge.image import load_image
    from segzero_edge.overlay import draw_overlay
    from segzero_edge.segmenter import Segmenter

    t0 = time.perf_counter()
    engine = build_demo_engine(args.work_dir, rebuild=args.rebuild)
    image_path = args.image or DEFAULT_IMAGE
    text = args.text
    if text is None:
        meta = json.loads(DEFAULT_IMAGE.with_suffix(".json").read_text())
        text = meta["text"] if args.image is None else "the object in the middle"
    rgb = load_image(image_path)
    with Segmenter(engine, device="cpu", max_new_tokens=160) as seg:
        res = seg.predict(rgb, text)
    args.out.mkdir(parents=True, exist_ok=True)
    overlay = args.out / "demo.overlay.png"
    record_path = args.out / "demo.json"
    draw_overlay(rgb, res.mask, res.box, res.points).save(overlay)
    record = {"engine_dir": str(engine), "image": str(image_path), "text": text, "found": res.found,
              "error": res.error, "box": res.box, "points": res.points, "score": res.score,
              "mask_pixels": int(res.mask.sum()), "raw_text": res.raw_text, "timings_ms": dict(res.timings_ms),
              "weights": "random (tiny Qwen2.5-VL-architecture reasoner, SAM2.1 hiera-t)"}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print()
    print("segzero-edge demo: RANDOM WEIGHTS. Every stage ran for real (INT4 ONNX reasoner with the answer")
    print("constraint, SAM2 ONNX encoder/decoder), but the models are untrained, so the box is arbitrary.")
    print(f"  instruction : {text!r}")
    if res.found:
        points = [tuple(round(v) for v in p) for p in res.points]
        print(f"  answer      : box {[round(v) for v in res.box]}, points {points}")
        print(f"  mask        : {record['mask_pixels']} pixels, SAM2 score {res.score:.3f}")
    else:
        print(f"  answer      : not found ({res.error})")
    print("  timings ms  : " + ", ".join(f"{k} {v:.0f}" for k, v in res.timings_ms.items()))
    print(f"  overlay     : {overlay}")
    print(f"  json        : {record_path}")
    print(f"  engine dir  : {engine}  (inspect it: segzero-edge inspect {engine})")
    print(f"  total       : {time.perf_counter() - t0:.1f} s")
    print()
    print(REAL_COMMANDS)
    return 0


COMMAND = Command(
    name="demo",
    add_arguments=_add_arguments,
    run=_run,
    description="Build tiny random checkpoints (cached), export them to an engine directory, and segment the "
    "bundled image with Segmenter.predict; writes an overlay PNG and a JSON file. Offline; the weights are random.",
)
