"""Accuracy of world reasoner checkpoints on a split, like Seg-Zero's Table 1 (without masks until the tiny
SAM2 exists): box IoU, parse rate, mean Seg-Zero reward and its components.

Each checkpoint generates greedily with ``transformers`` (batched, left padding) on the split's index
folder; the prompt is ``segzero_edge.prompt.render_chat`` and the input size comes from the checkpoint's
``segzero_edge.json``. Answers are decoded with ``segzero_edge.decode_answer`` into scene pixels.

* parse rate: share of completions that ``decode_answer`` accepts.
* box IoU: IoU of the predicted box and the GT mask's tight box, both inclusive pixel boxes in scene
  pixels; an unparsed answer scores 0. ``box_acc@0.5``: share with IoU > 0.5.
* reward: ``training.rewards.seg_zero_reward`` (strict, 0..5) against the Seg-Zero solution of the GT mask.
* gIoU / cIoU (``segzero_edge.evaluation.metrics``): only with a SAM2 engine (``--sam2-engine``).
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge import decode_answer
from segzero_edge.prompt import IM_END, read_checkpoint_meta, render_chat
from segzero_edge.training.data import mask_box, record_geometry
from segzero_edge.training.rewards import COMPONENTS, format_solution, seg_zero_reward_components

from .dataset import read_index

logger = logging.getLogger(__name__)


def box_iou(a: tuple[float, ...] | None, b: tuple[float, ...]) -> float:
    """IoU of inclusive pixel boxes ``(x1, y1, x2, y2)`` (a box covers x1..x2 inclusive); None -> 0."""
    if a is None:
        return 0.0
    ix = min(a[2], b[2]) - max(a[0], b[0]) + 1
    iy = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = max(ix, 0.0) * max(iy, 0.0)
    area = lambda r: max(r[2] - r[0] + 1, 0.0) * max(r[3] - r[1] + 1, 0.0)  # noqa: E731
    union = area(a) + area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def generate_completions(
    checkpoint: Path,
    images: list[Any],
    questions: list[str],
    *,
    batch_size: int = 16,
    max_new_tokens: int = 320,
    progress: bool = True,
) -> list[str]:
    """Greedy completions (text up to ``<|im_end|>``) of ``checkpoint`` for PIL images + questions."""
    import torch

    from segzero_edge.reference.qwen import load_qwen_model
    from segzero_edge.training.grpo import load_processor

    size = read_checkpoint_meta(checkpoint)["input_size"]
    processor = load_processor(checkpoint, size)
    processor.tokenizer.padding_side = "left"
    model = load_qwen_model(checkpoint, "float32")
    model.eval()
    out: list[str] = []
    starts = range(0, len(images), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {checkpoint.name}", unit="batch")
    for s in starts:
        imgs = [im.resize((size, size), resample=2) for im in images[s : s + batch_size]]  # 2 = bilinear
        texts = [render_chat(q) for q in questions[s : s + batch_size]]
        inputs = processor(text=texts, images=imgs, padding=True, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        for row in gen[:, inputs["input_ids"].shape[1] :]:
            text = processor.tokenizer.decode(row, skip_special_tokens=False)
            out.append(text.split(IM_END)[0].split("<|endoftext|>")[0])
    return out


def evaluate_checkpoint(
    checkpoint: str | Path,
    split_dir: str | Path,
    *,
    count: int | None = None,
    progress: bool = True,
    sam2_engine: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of one checkpoint on the split folder (see the module docstring).

    With ``sam2_engine`` (an engine directory with a ``sam2`` component, e.g. the world's tiny SAM2), each
    parsed answer's box and points go through ``Sam2Pipeline`` and gIoU / cIoU are added
    (``segzero_edge.evaluation.metrics``: an unparsed answer is a miss).
    """
    from PIL import Image

    from segzero_edge.evaluation.metrics import aggregate, sample_iou

    checkpoint, split_dir = Path(checkpoint), Path(split_dir)
    size = read_checkpoint_meta(checkpoint)["input_size"]
    records = read_index(split_dir)[:count]
    images, masks = [], []
    for r in records:
        images.append(Image.open(io.BytesIO((split_dir / r["image"]).read_bytes())).convert("RGB"))
        masks.append(np.asarray(Image.open(split_dir / r["mask"])) > 0)
    t0 = time.perf_counter()
    completions = generate_completions(checkpoint, images, [r["text"] for r in records], progress=progress)
    seconds = time.perf_counter() - t0
    sam2 = None
    if sam2_engine is not None:
        from segzero_edge.sam2 import Sam2Pipeline

        sam2 = Sam2Pipeline(sam2_engine, device="cpu", backend="ort", threads=1)
    per, comps, mask_ious = [], {c: [] for c in COMPONENTS}, []
    for r, im, m, text in zip(records, images, masks, completions):
        ans = decode_answer(text, image_size=im.size, model_size=(size, size))
        if sam2 is not None:
            pred = None
            if ans.ok:
                res = sam2.segment(
                    np.asarray(im),
                    box=np.asarray(ans.box, np.float32),
                    points=np.asarray(ans.points, np.float32).reshape(-1, 2),
                )
                pred = res.masks[0]
            mask_ious.append(sample_iou(pred, m))
        gt = mask_box(m)
        iou = box_iou(ans.box if ans.ok else None, gt)
        box, pts, _ = record_geometry(m, size)
        c = seg_zero_reward_components(text, format_solution(box, pts))
        for k in COMPONENTS:
            comps[k].append(c[k])
        per.append(
            {
                "id": r["id"],
                "kind": r["kind"],
                "parsed": bool(ans.ok),
                "box_iou": iou,
                "reward": float(sum(c.values())),
                "text": text,
            }
        )
    kinds = sorted({p["kind"] for p in per})
    mean = lambda xs: float(np.mean(xs)) if xs else 0.0  # noqa: E731
    extra: dict[str, Any] = {}
    if sam2 is not None:
        scores = aggregate(mask_ious)
        extra = {"giou": scores.giou, "ciou": scores.ciou, "sam2_engine": str(sam2_engine)}
    return {
        **extra,
        "checkpoint": str(checkpoint),
        "input_size": size,
        "samples": len(per),
        "parse_rate": mean([p["parsed"] for p in per]),
        "box_iou": mean([p["box_iou"] for p in per]),
        "box_acc@0.5": mean([p["box_iou"] > 0.5 for p in per]),
        "reward": mean([p["reward"] for p in per]),
        "reward_components": {k: mean(v) for k, v in comps.items()},
        "box_iou_by_kind": {k: mean([p["box_iou"] for p in per if p["kind"] == k]) for k in kinds},
        "generation_seconds": seconds,
        "examples": per[:3],
        "per_sample": [{k: p[k] for k in ("id", "parsed", "box_iou", "reward")} for p in per],
    }


def machine_info(threads: int) -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "loadavg_start": list(os.getloadavg()),
    }


def write_report(results: dict[str, dict], stem: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """``stem.json`` (everything) and ``stem.md`` (the table)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "loadavg_end": list(os.getloadavg())}
    js = stem.with_suffix(".json")
    js.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [
        f"# World reasoner on the {meta.get('split', 'test')} split",
        "",
        f"Command: `{meta.get('command', '')}`  ",
        f"Date: {meta.get('date', '')}  ",
        f"Machine: {meta['machine']['platform']}, {meta['machine']['cpu_count']} CPUs, torch "
        f"{meta['machine']['torch']}, {meta['machine']['torch_threads']} thread(s); load average "
        f"{meta['machine']['loadavg_start']} -> {meta['loadavg_end']}",
        "",
        "| model | samples | parse rate | box IoU | box acc@0.5 | mean reward (0-5) | gIoU | cIoU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        g = f"{r['giou']:.3f}" if "giou" in r else "n/a (no SAM2 yet)"
        c = f"{r['ciou']:.3f}" if "ciou" in r else "n/a"
        lines.append(
            f"| {name} | {r['samples']} | {r['parse_rate']:.3f} | {r['box_iou']:.3f} | "
            f"{r['box_acc@0.5']:.3f} | {r['reward']:.3f} | {g} | {c} |"
        )
    lines += [
        "",
        "Reward components (mean): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["reward_components"].items())
            for name, r in results.items()
        ),
        "",
        "Box IoU by query kind: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in r["box_iou_by_kind"].items())
            for name, r in results.items()
        ),
        "",
    ]
    md = stem.with_suffix(".md")
    md.write_text("\n".join(lines))
    return js, md


def run_eval_cli(args: Any) -> int:
    import sys

    import torch

    torch.set_num_threads(args.threads)
    machine = machine_info(args.threads)
    results = {}
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        results[name] = evaluate_checkpoint(
            path, Path(args.data) / args.split, count=args.count, sam2_engine=getattr(args, "sam2_engine", None)
        )
        print(
            f"{name}: parse {results[name]['parse_rate']:.3f} box IoU {results[name]['box_iou']:.3f} "
            f"reward {results[name]['reward']:.3f}"
        )
    command = getattr(args, "command", None) or " ".join(["python -m segzero_edge.world", *sys.argv[1:]])
    meta = {
        "split": args.split,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine,
    }
    js, md = write_report(results, Path(args.out), meta)
    print(f"wrote {js} and {md}")
    return 0
