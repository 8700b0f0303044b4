"""Train the world's tiny SAM2 from box + point prompts to masks, on a CPU, in minutes.

    python -m segzero_edge.world.sam2_train --out DIR [--minutes 30] [--steps N] [--seed 0]

writes ``DIR/sam2_tiny.pt`` (official format, ``{"model": state_dict}``), ``DIR/sam2_tiny.yaml`` (the
config it was built from) and ``DIR/train_log.json`` (settings, loss curve, validation IoU).

Why not SAM2's own training code (``training/`` of facebookresearch/sam2)? It is built for SA-1B /
SA-V style data and video: a VOS dataset/sampler pipeline that reads frames and RLE masks from disk,
transforms from torchvision (which cannot be imported with the CPU torch of this project), a
``SAM2Train`` model that simulates interactive clicks over frames through the memory path, and a
Hydra + submitit launcher set up for multi-GPU distributed runs (NCCL, AMP). None of that fits a
few thousand in-memory 224 px scenes on a 2-core CPU. What is kept from it is the recipe of the
image path: multimask outputs with the loss of the best of the three (focal x 20 + dice, SAM's
weights), the IoU head regressed (MSE) on the true IoU of every output mask, and the object score
head trained with BCE (every prompt here has an object).

The loop: each step takes ``batch`` training scenes (``world.SPLITS["train"]``), encodes
them once, and decodes up to ``objects`` objects per scene with a jittered box and two points
(``sam2_data.sample_prompt``, the prompts the reasoner gives). Token 0 (the single-mask output) is
trained on the target too, so both runtime mask modes work. Losses are computed on the logits
upsampled bilinearly (as the runtime does) to ``loss_size`` (112: half the image size, against
area-averaged soft targets; 4x cheaper than 224 and still 2x the logits' resolution). AdamW, linear
warm-up, cosine decay over ``max(step / steps, elapsed / minutes)``: the run stops at ``--steps`` or
``--minutes``, whichever comes first, and the schedule always ends at its floor. Seeded: data order, prompts and
initialization are fixed by ``--seed`` (timing decides only where a ``--minutes`` run stops).
Resumable: ``DIR/train_state.pt`` (weights, optimizer, data order, random state, step) is written with
every checkpoint; running the same command again continues from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from segzero_edge.errors import ConfigError

from .sam2_data import SceneStore, gt_prompt, sample_prompt
from .sam2_model import (
    build_model,
    decode,
    default_config_path,
    encode,
    normalize,
    prompt_tensors,
    save_checkpoint,
)

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "sam2_tiny.pt"
CONFIG_NAME = "sam2_tiny.yaml"
#: Resumable state (weights, optimizer, data order, random state, step), written with every checkpoint.
STATE_NAME = "train_state.pt"


def _resumable(settings: dict) -> dict:
    """The settings a resumed run must share with the saved one (threads and save interval may change)."""
    return {k: v for k, v in settings.items() if k not in ("threads", "save_every_minutes")}


@dataclass(frozen=True)
class TrainSettings:
    """Settings of one run (all validated; written into ``train_log.json``)."""

    config: str
    seed: int = 0
    minutes: float = 30.0
    steps: int = 4000
    batch: int = 8
    objects: int = 3
    loss_size: int = 112
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.01
    train_scenes: int = 6000
    val_scenes: int = 200
    threads: int = 2
    save_every_minutes: float = 5.0

    def __post_init__(self) -> None:
        problems = []
        if self.minutes <= 0 or self.steps < 1:
            problems.append("minutes must be > 0 and steps >= 1")
        if self.batch < 1 or self.objects < 1 or self.loss_size < 1:
            problems.append("batch, objects and loss_size must be >= 1")
        if not (0 < self.lr < 1 and 0 <= self.min_lr_ratio <= 1):
            problems.append("need 0 < lr < 1 and 0 <= min_lr_ratio <= 1")
        if self.train_scenes < self.batch or self.val_scenes < 0:
            problems.append("train_scenes must be >= batch, val_scenes >= 0")
        if self.threads < 1:
            problems.append("threads must be >= 1")
        if problems:
            raise ConfigError("invalid sam2_train settings: " + "; ".join(problems))


# --------------------------------------------------------------------------------------------------
# Losses (SAM / SAM2: focal x 20 + dice on the best of the multimask outputs, IoU head MSE)
# --------------------------------------------------------------------------------------------------


def focal_loss(logits, target, alpha: float = 0.25, gamma: float = 2.0):
    """Sigmoid focal loss per mask, averaged over pixels: ``[N, K, H, W]`` -> ``[N, K]``."""
    import torch.nn.functional as F

    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(-1)


def dice_loss(logits, target):
    """``1 - (2 |p * t| + 1) / (|p| + |t| + 1)`` per mask: ``[N, K, H, W]`` -> ``[N, K]``."""
    p = logits.sigmoid().flatten(2)
    t = target.flatten(2)
    return 1 - (2 * (p * t).sum(-1) + 1) / (p.sum(-1) + t.sum(-1) + 1)


def mask_losses(low_res, iou_pred, obj_logits, target):
    """The step loss and its parts.

    Args:
        low_res: ``[N, 4, r, r]`` logits (token 0 single-mask, 1..3 multimask).
        iou_pred: ``[N, 4]`` predicted IoUs (sigmoid outputs).
        obj_logits: ``[N, 1]`` object score logits.
        target: ``[N, 1, L, L]`` float ground-truth masks (soft, area-averaged, at the loss size L).

    Returns:
        ``(loss, parts)``: scalar tensor, dict of floats (``mask``, ``single``, ``iou``, ``obj``).
    """
    import torch
    import torch.nn.functional as F

    logits = F.interpolate(low_res, size=target.shape[-2:], mode="bilinear", align_corners=False)
    t = target.expand_as(logits)
    per = 20.0 * focal_loss(logits, t) + dice_loss(logits, t)  # [N, 4]
    multi = per[:, 1:].min(dim=1).values.mean()
    single = per[:, 0].mean()
    with torch.no_grad():
        pred = logits > 0
        inter = (pred & (t > 0.5)).flatten(2).sum(-1).float()
        union = (pred | (t > 0.5)).flatten(2).sum(-1).float()
        true_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    iou = F.mse_loss(iou_pred, true_iou)
    obj = F.binary_cross_entropy_with_logits(obj_logits, torch.ones_like(obj_logits))
    loss = multi + single + iou + obj
    parts = {"mask": multi.item(), "single": single.item(), "iou": iou.item(), "obj": obj.item()}
    return loss, parts


# --------------------------------------------------------------------------------------------------
# Batches, evaluation
# --------------------------------------------------------------------------------------------------


def make_batch(
    store: SceneStore, scenes: np.ndarray, objects: int, rng: np.random.Generator, loss_size: int | None = None
):
    """Images ``[B, 3, S, S]``, ``image_index`` ``[N]``, coords ``[N, 4, 2]``, labels ``[N, 4]``, targets
    ``[N, 1, L, L]`` (L = ``loss_size``, default S; area-averaged below S) for up to ``objects`` random
    objects of each scene in ``scenes``."""
    import torch
    import torch.nn.functional as F

    prompts, index, masks = [], [], []
    for b, i in enumerate(scenes):
        n = int(store.num_objects[i])
        for k in rng.permutation(n)[:objects]:
            m = store.mask(int(i), int(k))
            if m.sum() < 4:  # a sliver: no meaningful prompt
                continue
            prompts.append(sample_prompt(m, rng))
            index.append(b)
            masks.append(m)
    coords, labels = prompt_tensors(prompts)
    target = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
    if loss_size and loss_size != target.shape[-1]:
        target = F.interpolate(target, size=(loss_size, loss_size), mode="area")
    return normalize(store.images[scenes]), torch.tensor(index), coords, labels, target


def predict_masks(model, store: SceneStore, indices, prompts, *, chunk: int = 16) -> np.ndarray:
    """Masks ``[n, S, S]`` bool for one prompt per scene, as the runtime makes them: the multimask
    output with the highest predicted IoU (Seg-Zero), logits upsampled bilinearly, threshold 0."""
    import torch
    import torch.nn.functional as F

    out = []
    with torch.no_grad():
        for start in range(0, len(indices), chunk):
            idx = np.asarray(indices[start : start + chunk])
            feats = encode(model, normalize(store.images[idx]))
            coords, labels = prompt_tensors(prompts[start : start + chunk])
            low_res, iou, _ = decode(model, feats, torch.arange(len(idx)), coords, labels)
            best = 1 + iou[:, 1:].argmax(dim=1)
            chosen = low_res[torch.arange(len(idx)), best][:, None]
            up = F.interpolate(chosen, size=store.images.shape[1:3], mode="bilinear", align_corners=False)
            out.append((up[:, 0] > 0).numpy())
    return np.concatenate(out) if out else np.zeros((0, *store.images.shape[1:3]), bool)


def evaluate(model, store: SceneStore) -> np.ndarray:
    """Mask IoU of each sample's query target given its ground-truth prompt (box + 2 Seg-Zero points)."""
    model.eval()
    indices = np.arange(len(store))
    prompts = [gt_prompt(store.target_mask(int(i))) for i in indices]
    pred = predict_masks(model, store, indices, prompts)
    gt = np.stack([store.target_mask(int(i)) for i in indices])
    inter = (pred & gt).reshape(len(gt), -1).sum(1)
    union = (pred | gt).reshape(len(gt), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def iou_summary(ious: np.ndarray) -> dict[str, float]:
    """Mean IoU and the fractions of samples at IoU >= 0.5 and >= 0.9."""
    return {
        "mean_iou": float(np.mean(ious)),
        "frac_iou_ge_0.5": float(np.mean(ious >= 0.5)),
        "frac_iou_ge_0.9": float(np.mean(ious >= 0.9)),
        "count": len(ious),
    }


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------


def lr_at(progress: float, step: int, s: TrainSettings) -> float:
    """Linear warm-up over ``s.warmup`` steps, then cosine from ``s.lr`` to ``s.lr * s.min_lr_ratio``."""
    warm = min(1.0, (step + 1) / max(1, s.warmup))
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return s.lr * warm * (s.min_lr_ratio + (1 - s.min_lr_ratio) * cos)


def train(
    s: TrainSettings,
    out_dir: str | Path,
    *,
    progress: bool = True,
    store: SceneStore | None = None,
    stop_after: int | None = None,
):
    """Run the training of the module docstring; returns ``(model, log dict)``.

    Args:
        s: the settings.
        out_dir: where the checkpoint, config copy and ``train_log.json`` go (created).
        progress: show a progress bar.
        store: training scenes to use instead of the first ``s.train_scenes`` of the train split
            (tests pass a few).
        stop_after: leave after this many new steps with the resumable state saved and no validation
            (returns ``(model, None)``; the same call again continues where it stopped).
    """
    import torch
    from tqdm import tqdm

    torch.set_num_threads(s.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(s.config, out / CONFIG_NAME)
    t_data = time.perf_counter()
    if store is None:
        log.info("generating %d training scenes", s.train_scenes)
        store = SceneStore.from_split("train", s.train_scenes)
    t_data = time.perf_counter() - t_data
    model = build_model(s.config, seed=s.seed)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    rng = np.random.default_rng(s.seed)
    order = rng.permutation(len(store))
    cursor, history, step, elapsed_before = 0, [], 0, 0.0
    state_path = out / STATE_NAME
    if state_path.exists():  # resume after a crash: same weights, optimizer, data order and prompts
        st = torch.load(state_path, weights_only=False)
        if _resumable(st["settings"]) != _resumable(asdict(s)):
            raise ConfigError(
                f"{state_path} was written with other settings: {st['settings']}",
                hint="rerun with the same settings, or delete the file to start over",
            )
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        rng.bit_generator.state = st["rng"]
        order, cursor, step, history = st["order"], st["cursor"], st["step"], st["history"]
        elapsed_before = st["elapsed"]
        log.info("resuming at step %d from %s", step, state_path)

    def save_state() -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "settings": asdict(s),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng.bit_generator.state,
                "order": order,
                "cursor": cursor,
                "step": step,
                "history": history,
                "elapsed": time.perf_counter() - t0,
            },
            tmp,
        )
        tmp.replace(state_path)

    t0 = time.perf_counter() - elapsed_before
    last_save = time.perf_counter()
    bar = tqdm(total=s.steps, initial=step, desc="sam2_train", unit="step", disable=not progress)
    first = step
    while step < s.steps:
        if stop_after is not None and step - first >= stop_after:
            save_state()
            bar.close()
            return model, None
        elapsed = time.perf_counter() - t0
        # the clock's share is rounded so that a run the step count ends has a schedule (and weights)
        # independent of timing
        frac = max(step / s.steps, round(elapsed / (60 * s.minutes), 3))
        if frac >= 1.0:
            break
        if cursor + s.batch > len(order):
            order, cursor = rng.permutation(len(store)), 0
        scenes = order[cursor : cursor + s.batch]
        cursor += s.batch
        images, index, coords, labels, target = make_batch(store, scenes, s.objects, rng, s.loss_size)
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, step, s)
        feats = encode(model, images)
        low_res, iou, obj = decode(model, feats, index, coords, labels)
        loss, parts = mask_losses(low_res, iou, obj, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        history.append(
            {
                "step": step,
                "loss": loss.item(),
                **parts,
                "lr": opt.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        bar.update()
        bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", mask=f"{parts['mask']:.3f}")
        if step % 50 == 0:
            recent = history[-50:]
            log.info(
                "step %d: loss %.4f (mask %.4f, iou %.4f), lr %.2e, %.0f s",
                step,
                np.mean([h["loss"] for h in recent]),
                np.mean([h["mask"] for h in recent]),
                np.mean([h["iou"] for h in recent]),
                history[-1]["lr"],
                history[-1]["seconds"],
            )
        if time.perf_counter() - last_save > 60 * s.save_every_minutes:
            save_checkpoint(model, out / CHECKPOINT_NAME)
            save_state()
            last_save = time.perf_counter()
    bar.close()
    train_seconds = time.perf_counter() - t0
    save_checkpoint(model, out / CHECKPOINT_NAME)
    save_state()
    result = {
        "settings": asdict(s),
        "steps": step,
        "train_seconds": round(train_seconds, 1),
        "data_seconds": round(t_data, 1),
        "train_scenes": len(store),
        "final_loss_mean_last_50": float(np.mean([h["loss"] for h in history[-50:]])) if history else None,
        "history": history[::10] + history[-1:],
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "threads": s.threads,
            "loadavg_end": list(os.getloadavg()),
        },
    }
    if s.val_scenes:
        val = SceneStore.from_split("val", s.val_scenes)
        result["val"] = iou_summary(evaluate(model, val))
        log.info("validation (%d scenes, ground-truth prompts): %s", len(val), result["val"])
    (out / "train_log.json").write_text(json.dumps(result, indent=1))
    return model, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m segzero_edge.world.sam2_train",
        description="Train the world's tiny SAM2 (official SAM2Base, our small config) on the synthetic "
        "scenes from box + point prompts; writes DIR/sam2_tiny.pt, DIR/sam2_tiny.yaml, DIR/train_log.json.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--config",
        default=str(default_config_path()),
        help="SAM2 config file in the official format (default: %(default)s)",
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="time budget of the loop (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=4000, help="most optimizer steps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of init, data order, prompts (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="scenes per step (default: %(default)s)")
    parser.add_argument("--objects", type=int, default=3, help="most objects per scene per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default: %(default)s)")
    parser.add_argument(
        "--train-scenes",
        type=int,
        default=6000,
        help="use the first N scenes of the train split (default: %(default)s, all)",
    )
    parser.add_argument(
        "--val-scenes", type=int, default=200, help="validation scenes evaluated at the end (default: %(default)s)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = TrainSettings(
        config=args.config,
        seed=args.seed,
        minutes=args.minutes,
        steps=args.steps,
        batch=args.batch,
        objects=args.objects,
        lr=args.lr,
        train_scenes=args.train_scenes,
        val_scenes=args.val_scenes,
        threads=args.threads,
    )
    _, result = train(s, args.out, progress=not args.no_progress)
    print(
        json.dumps(
            {k: result[k] for k in ("steps", "train_seconds", "final_loss_mean_last_50")} | {"val": result.get("val")},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
