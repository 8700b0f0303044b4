"""Training the world SAM2's video path on moving world clips: the second stage of the world SAM2.

The first stage (``sam2_train``) trains the image path on still scenes and leaves the memory attention and
memory encoder random. This stage starts from that checkpoint, primes the video path
(``prime_video_path``: without it the loss stayed at the empty-mask plateau), and trains the memory
attention, memory encoder, pointer projections and embeddings together with the mask decoder (a decoder
trained on prompted stills never saw a frame without prompts, which is every tracked frame). The image
encoder and prompt encoder stay frozen; still-scene batches with the first stage's loss keep the image path
(its test-split mask IoU with ground-truth prompts went from 0.916 to 0.922). The shipped settings are
``VideoTrainSettings()``: 1500 steps, 10 min on 1 thread; J with the ground-truth prompt on 6 test clips
(torch): untrained 0.104, trained 0.800 (prompting every frame with the ground truth: 0.911).

* data: windows of ``clips.generate_clip`` (random seed, length and start; never a ``track_eval`` test
  seed), 2 frames for the first 60% of the steps, then 6; the target prompted on the window's first frame
  with its ground-truth Seg-Zero prompt (box + 2 points);
* forward: the official ``SAM2Base._track_step`` / ``_encode_memory_in_output`` frame by frame in training
  mode, the memory of every frame kept with its gradient (back-propagation through the window);
* loss per tracked frame: where the target is visible, SAM2's multimask loss (20 x focal + dice of the
  best of the three masks, the IoU head against each mask's IoU) at the low-res size and the object score
  against "present"; where it is not, the object score against "absent"; plus ``image_batch`` still scenes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .clips import generate_clip
from .sam2_data import SceneStore, gt_prompt
from .sam2_train import dice_loss, focal_loss, mask_losses
from .track_eval import TEST_SEEDS

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

    steps: int = 1500
    #: Frames per window (the prompted frame and the tracked ones) for the first ``long_from`` of the steps,
    #: then ``long_frames``. Windows of 4+ frames from the start (with the target leaving the frame) made the
    #: object score collapse to "absent" (presence right ~50%); 2 frames first teach following the target.
    clip_frames: int = 2
    long_frames: int = 6
    long_from: float = 0.6
    lr: float = 3e-4
    weight_decay: float = 0.01
    seed: int = 0
    threads: int = 2
    #: Train the mask decoder (with its IoU and object-score heads) too: a frozen decoder never saw a frame
    #: without prompts, which is what every tracked frame is.
    decoder: bool = True
    #: Still scenes per step whose prompted loss (``sam2_train.mask_losses``) keeps the image path where it
    #: was trained; 0: none.
    image_batch: int = 4
    #: Scenes of the train split the still batches draw from.
    image_scenes: int = 1000
    #: Start with ``prime_video_path`` (for a model whose video path was never trained).
    prime: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1 or min(self.clip_frames, self.long_frames) < 2 or self.lr <= 0 or self.image_batch < 0:
            raise ValueError("need steps >= 1, clip_frames and long_frames >= 2, lr > 0 and image_batch >= 0")

    def frames_at(self, step: int) -> int:
        """Window length of ``step``."""
        return self.long_frames if step >= self.long_from * self.steps else self.clip_frames


#: Constant of the position-only cross-attention ``prime_video_path`` starts from: the score between a query
#: and a memory token falls by about 6 per token of distance (RoPE's fastest pair), so each query reads the
#: memory around its own position.
POSITION_BIAS = 2.5
#: Gain on the cross-attention's output at the start: the world's image embedding has per-token norm ~168
#: (std 18), the cross-attention's output ~10, so without it the memory is a few percent of what reaches
#: the final LayerNorm and the decoder.
CROSS_ATTENTION_GAIN = 20.0


def prime_video_path(model, frame: np.ndarray) -> dict[str, float]:
    """Start an untrained video path where memory can reach the decoder (the world's SAM2 was trained on
    still images, so its features are on their own scale). Measured on 2-frame windows (J on 6 test clips):
    without these changes the loss sat at the empty-mask plateau (~0.9; J 0.12-0.27 after 300 steps), with
    all three J 0.76 after 400 steps; without the position-only attention J 0.26, the gain alone nothing:

    * the cross-attention's query and key projections become constants (weights 0, bias ``POSITION_BIAS``):
      with RoPE the score then depends only on the offset between query and key, so each query starts by
      reading the memory at its own position; training adds the content terms;
    * the mask downsampler's last convolution is scaled so the mask's share of a memory has the same spread
      as the image's (``pix_feat_proj``) on ``frame``: measured 0.34 against 10.5 on the world model;
    * the cross-attention's output projection is multiplied by ``CROSS_ATTENTION_GAIN``.

    ``frame``: ``(S, S, 3)`` uint8 at the model size. Returns the measured spreads and the mask gain.
    """
    import torch

    from .sam2_model import normalize

    enc = model.memory_encoder
    with torch.no_grad():
        feats, _, sizes = _frame_features(model, normalize(frame[None]))
        h, w = sizes[-1]
        pix = enc.pix_feat_proj(feats[-1].permute(1, 2, 0).reshape(1, -1, h, w))
        s = model.image_size
        mask = torch.zeros(1, 1, s, s)
        mask[..., s // 4 : s // 2, s // 4 : s // 2] = 1.0
        down = enc.mask_downsampler(mask)
        gain = float(pix.std() / down.std())
        last = enc.mask_downsampler.encoder[-1]
        last.weight.mul_(gain)
        last.bias.mul_(gain)
        for layer in model.memory_attention.layers:
            attn = layer.cross_attn_image
            for proj in (attn.q_proj, attn.k_proj):
                proj.weight.zero_()
                proj.bias.fill_(POSITION_BIAS)
            attn.out_proj.weight.mul_(CROSS_ATTENTION_GAIN)
    return {"image_std": float(pix.std()), "mask_std": float(down.std()), "mask_gain": gain}


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
        seed = int(rng.integers(0, 2**31))
        if TEST_SEEDS <= seed < TEST_SEEDS + 10_000:  # the test clips of track_eval
            continue
        clip = generate_clip(seed, length)
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
        multimasks, _, ious, low_res, high_res, obj_ptr, obj_logits = sam_out
        current.update(pred_masks=low_res, pred_masks_high_res=high_res, obj_ptr=obj_ptr)
        model._encode_memory_in_output(feats, sizes, points, True, high_res, obj_logits, current)
        output["cond_frame_outputs" if t == 0 else "non_cond_frame_outputs"][t] = current
        if t == 0:
            continue
        target = torch.from_numpy(masks[t][None, None].astype(np.float32))
        target = F.interpolate(target, size=(r, r), mode="area")
        present = float(masks[t].sum() > 0)
        loss = F.binary_cross_entropy_with_logits(obj_logits, torch.full_like(obj_logits, present))
        if present:  # SAM2's multimask loss: the best of the three, and the IoU head against each one's IoU
            t3 = target.expand_as(multimasks)
            per = 20.0 * focal_loss(multimasks, t3) + dice_loss(multimasks, t3)
            with torch.no_grad():
                pred, gt = multimasks > 0, t3 > 0.5
                union = (pred | gt).flatten(2).sum(-1).float()
                true_iou = (pred & gt).flatten(2).sum(-1).float() / union.clamp(min=1)
            loss = loss + per.min(dim=1).values.mean() + F.mse_loss(ious, true_iou)
        losses.append(loss)
        right.append(float((obj_logits.item() > 0) == bool(present)))
    return torch.stack(losses).mean(), float(np.mean(right))


def still_loss(model, store, scenes: int, rng: np.random.Generator):
    """The image path's own training loss (``sam2_train.mask_losses``) on ``scenes`` random still scenes."""
    import torch

    from .sam2_model import decode, encode
    from .sam2_train import TrainSettings, make_batch

    idx = rng.choice(len(store), size=scenes, replace=False)
    images, index, coords, labels, target = make_batch(store, idx, 3, rng, loss_size=TrainSettings.loss_size)
    with torch.no_grad():
        feats = encode(model, images)
    low_res, iou, obj = decode(model, feats, index, coords, labels)
    return mask_losses(low_res, iou, obj, target)[0]


def train_video(model, settings: VideoTrainSettings = VideoTrainSettings(), *, progress: bool = False) -> dict:
    """Train ``model``'s video path in place (see the module docstring); returns the loss log."""
    import torch

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    rng = np.random.default_rng(settings.seed)
    primed = prime_video_path(model, generate_clip(TEST_SEEDS - 1, 8).frames[0]) if settings.prime else None
    trained = VIDEO_PATH + (("sam_mask_decoder.",) if settings.decoder else ())
    params = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trained))
        if p.requires_grad:
            params.append(p)
    store = SceneStore.from_split("train", settings.image_scenes) if settings.image_batch else None
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    model.train()
    model.image_encoder.eval()
    model.sam_prompt_encoder.eval()
    history, t0 = [], time.perf_counter()
    for step in range(settings.steps):
        lr = settings.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / settings.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        frames, masks, prompt = window(rng, settings.frames_at(step))
        loss, right = clip_loss(model, frames, masks, prompt)
        if store is not None:
            loss = loss + still_loss(model, store, settings.image_batch, rng)
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
    seconds = round(time.perf_counter() - t0, 1)
    return {"settings": asdict(settings), "primed": primed, "history": history, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    from . import ASSETS
    from .sam2_model import build_model, load_checkpoint, save_checkpoint

    d = VideoTrainSettings()
    parser = argparse.ArgumentParser(
        prog="python -m segzero_edge.world train-sam2-video",
        description="Train a world SAM2 checkpoint's video path (memory attention, memory encoder, object "
        "pointers) and its mask decoder on moving world clips, keeping the image path with still-scene batches; "
        "writes OUT (official checkpoint format) and OUT with .json (settings and loss log).",
    )
    parser.add_argument("--sam2", type=Path, default=ASSETS / "sam2_tiny.pt", help="starting checkpoint")
    parser.add_argument("--config", type=Path, default=ASSETS / "sam2_tiny.yaml", help="its config file")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint to write (.pt)")
    parser.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--clip-frames", type=int, default=d.clip_frames, help="frames per window at first")
    parser.add_argument("--long-frames", type=int, default=d.long_frames, help="frames per window later")
    parser.add_argument("--long-from", type=float, default=d.long_from, help="share of steps before long windows")
    parser.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    parser.add_argument("--image-batch", type=int, default=d.image_batch, help="still scenes per step (0: none)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--threads", type=int, default=d.threads)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = VideoTrainSettings(
            steps=args.steps,
            clip_frames=args.clip_frames,
            long_frames=args.long_frames,
            long_from=args.long_from,
            lr=args.lr,
            image_batch=args.image_batch,
            seed=args.seed,
            threads=args.threads,
        )
    except ValueError as exc:
        parser.error(str(exc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(args.out.parent, os.W_OK):  # found out now, not after the training
        parser.error(f"cannot write into {args.out.parent}")
    model = load_checkpoint(build_model(args.config), args.sam2)
    result = train_video(model, settings, progress=True)
    save_checkpoint(model, args.out)
    result["settings"] = asdict(settings)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['seconds']} s of training)")
    return 0
