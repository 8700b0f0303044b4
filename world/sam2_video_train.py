"""Training the world SAM2's video path (memory attention, memory encoder, object pointers) on world clips.

The world SAM2 (``world/assets/sam2_tiny.pt``) was trained on still scenes; its memory attention and memory
encoder are still random. This trains only the video path, with the image encoder and the SAM heads frozen,
so every still-image result (``predict``, the world accuracy table) stays bit for bit the same. First runs
(2 cores, 6 test clips of 30 frames, J with the ground-truth prompt on frame 0): untrained 0.205, 400 steps
0.318 (predict on every frame: 0.403); training the object-score head as well made it report the target
absent too often (1200 steps: J 0.220, 35 frames lost while visible), so it stays frozen. Not yet good
enough to ship.

* data: windows of ``clip_frames`` frames of ``clips.generate_clip`` (random seed, length and start), the
  target prompted on the window's first frame with its ground-truth Seg-Zero prompt (box + 2 points);
* forward: the official ``SAM2Base._track_step`` / ``_encode_memory_in_output`` frame by frame in training
  mode, the memory of every frame kept with its gradient (back-propagation through the window);
* loss per tracked frame: where the target is visible, 20 x focal + dice of the best of the three multimask
  outputs (SAM2's multimask loss) at the low-res size, plus the object score against "present"; where it is
  not, the object score against "absent".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from .clips import generate_clip
from .sam2_data import gt_prompt
from .sam2_train import dice_loss, focal_loss

log = logging.getLogger(__name__)

#: Parameter name prefixes of the video path (everything else stays frozen).
VIDEO_PATH = (
    "memory_attention.",
    "memory_encoder.",
    "maskmem_tpos_enc",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "no_obj_ptr",
    "no_obj_embed_spatial",
)


@dataclass(frozen=True)
class VideoTrainSettings:
    """Steps, window length, optimiser and data seeds of ``train_video``."""

    steps: int = 600
    clip_frames: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if self.steps < 1 or self.clip_frames < 2 or self.lr <= 0:
            raise ValueError("need steps >= 1, clip_frames >= 2 and lr > 0")


def _frame_features(model, image):
    """Backbone features of one normalised frame ``[1, 3, S, S]``, without gradient (frozen encoder)."""
    import torch

    with torch.no_grad():
        out = model.forward_image(image)
        _, feats, pos, sizes = model._prepare_backbone_features(out)
    return feats, pos, sizes


def window(rng: np.random.Generator, frames: int):
    """A training window: ``(frames list, target masks [T, S, S], prompt of the first frame)``."""
    while True:
        length = int(rng.integers(max(frames, 10), max(3 * frames, 10) + 1))
        clip = generate_clip(int(rng.integers(0, 2**31)), length)
        masks = clip.target_masks
        starts = [k for k in range(len(clip.frames) - frames + 1) if masks[k].sum() >= 16]
        if starts:
            k = int(rng.choice(starts))
            return clip.frames[k : k + frames], masks[k : k + frames], gt_prompt(masks[k])


def clip_loss(model, frames, masks, prompt):
    """The loss of one window (see the module docstring) and the share of frames with the right presence."""
    import torch
    import torch.nn.functional as F

    from .sam2_model import normalize

    images = normalize(np.stack(frames))
    coords = torch.from_numpy(np.concatenate([prompt.box.reshape(2, 2), prompt.points])[None])
    labels = torch.tensor([[2, 3, 1, 1]], dtype=torch.int32)
    output = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    losses, right = [], []
    r = model.image_size // 4
    for t in range(len(frames)):
        feats, pos, sizes = _frame_features(model, images[t : t + 1])
        points = {"point_coords": coords, "point_labels": labels} if t == 0 else None
        # num_frames only sets the pointers' temporal scale, min(num_frames, 16) - 1: a stream's (runtime) 15.
        current, sam_out, _, _ = model._track_step(
            t, t == 0, feats, pos, sizes, points, None, output, model.max_obj_ptrs_in_encoder, False, None
        )
        multimasks, _, _, low_res, high_res, obj_ptr, obj_logits = sam_out
        current.update(pred_masks=low_res, pred_masks_high_res=high_res, obj_ptr=obj_ptr)
        model._encode_memory_in_output(feats, sizes, points, True, high_res, obj_logits, current)
        output["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = current
        if t == 0:
            continue
        target = torch.from_numpy(masks[t][None, None].astype(np.float32))
        target = F.interpolate(target, size=(r, r), mode="area")
        present = float(masks[t].sum() > 0)
        loss = F.binary_cross_entropy_with_logits(obj_logits, torch.full_like(obj_logits, present))
        if present:
            per = 20.0 * focal_loss(multimasks, target.expand_as(multimasks)) + dice_loss(
                multimasks, target.expand_as(multimasks)
            )
            loss = loss + per.min(dim=1).values.mean()
        losses.append(loss)
        right.append(float((obj_logits.item() > 0) == bool(present)))
    return torch.stack(losses).mean(), float(np.mean(right))


def train_video(model, settings: VideoTrainSettings = VideoTrainSettings(), *, progress: bool = False) -> dict:
    """Train ``model``'s video path in place (see the module docstring); returns the loss log."""
    import torch

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(VIDEO_PATH))
        if p.requires_grad:
            params.append(p)
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    model.train()
    model.image_encoder.eval()
    model.sam_mask_decoder.eval()
    model.sam_prompt_encoder.eval()
    history, t0 = [], time.perf_counter()
    for step in range(settings.steps):
        lr = settings.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        frames, masks, prompt = window(rng, settings.clip_frames)
        loss, right = clip_loss(model, frames, masks, prompt)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append({"step": step, "loss": round(loss.item(), 5), "presence": right})
        if progress and step % 25 == 0:
            recent = history[-25:]
            log.info(
                "step %d loss %.4f presence %.2f (%.1f s)",
                step,
                np.mean([h["loss"] for h in recent]),
                np.mean([h["presence"] for h in recent]),
                time.perf_counter() - t0,
            )
    model.eval()
    return {"settings": settings.__dict__, "history": history, "seconds": round(time.perf_counter() - t0, 1)}
