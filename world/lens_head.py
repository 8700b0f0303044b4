"""``python -m segzero_edge.world train-lens-head``: a LENS head for the world's reasoner.

LENS's stage 1 on the small world: the shipped reasoner (``world/assets/reasoner``) stays frozen; trained are
the learned queries (``Q = 64``, LENS's count), the context module (``reference.lens``: connector, ``conv_1d``,
``proj_to_sam``) and the world SAM2's prompt encoder and mask decoder (its image encoder stays stock, as in
every LENS release). The reasoner is asked with LENS's CoT template (``prompt.LENS_TEMPLATES["cot"]``, the LENS
text closest to the Seg-Zero prompt it was trained on; under LENS's grounding template it writes no answer at
all). Its greedy completions on the first ``samples`` train scenes are generated once and cached
(``OUT/completions.json``); every step then runs the mask pass exactly as the runtime does (the sequence with
the queries appended, plain 1-D positions, post-norm hidden states; the prefix without gradients and the
queries on its KV cache), the context module, and SAM2's decoder with the one prompt token. Loss: binary
cross-entropy + dice on the single-mask token and the best multimask token, the IoU head's MSE (``_loss``).

Outputs under ``OUT``: ``head.safetensors`` (the trained tensors in float16 under LENS's names: ``learnable_query``,
``connector.*``, ``conv_1d.*``, ``proj_to_sam.*``, ``sam.sam_prompt_encoder.*``, ``sam.sam_mask_decoder.*``)
and ``train_log.json``. ``build_world_lens_checkpoint`` assembles a checkpoint in LENS's published layout from
a head, the world reasoner and the world SAM2; the shipped head is ``world/assets/lens_head.safetensors``.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import shutil
import time
from pathlib import Path

import numpy as np

from . import ASSETS, SCENE_SIZE, SPLITS

log = logging.getLogger(__name__)

HEAD_FILE = ASSETS / "lens_head.safetensors"
WORLD_SAM2 = ASSETS / "sam2_tiny.pt"
WORLD_SAM2_CONFIG = ASSETS / "sam2_tiny.yaml"
TEMPLATE = "cot"
NUM_QUERIES = 64
#: The shipped recipe: the first SAMPLES train scenes, STEPS steps of BATCH samples.
SAMPLES = 2000
STEPS = 1600
BATCH = 8
LR_HEAD = 1e-3
LR_SAM2 = 3e-4
MAX_NEW_TOKENS = 320


def _tuned(name: str) -> bool:
    return name.startswith(("sam_prompt_encoder.", "sam_mask_decoder."))


class _World:
    """The frozen reasoner and SAM2, and what is cached per sample (ids, image embeddings, SAM2 features)."""

    def __init__(self, reasoner: Path, threads: int):
        import torch

        from segzero_edge.reference.sam2_model import load_sam2_model
        from segzero_edge.reference.torch_reasoner import TorchReasoner

        torch.set_num_threads(threads)
        self.reasoner = TorchReasoner(reasoner, family="lens", template=TEMPLATE)
        self.model = self.reasoner.model.requires_grad_(False)
        self.lm = self.model.model.language_model
        self.sam = load_sam2_model(WORLD_SAM2, str(WORLD_SAM2_CONFIG))
        self.pad = self.reasoner.processor.tokenizer.pad_token_id
        self.hidden = self.model.config.text_config.hidden_size
        # transformers renamed the cache argument (``past_key_values`` -> ``cache``); use whichever it takes
        self._cache_arg = "cache" if "cache" in inspect.signature(self.lm.forward).parameters else "past_key_values"

    def prefix(self, image: np.ndarray, question: str, completion: list[int]):
        """``(inputs_embeds [1, T, H], attention mask [T])`` of prompt + completion (no gradients)."""
        import torch

        inputs = self.reasoner.inputs(image, question)
        ids = torch.cat([inputs.input_ids, torch.tensor([completion], dtype=torch.long)], dim=1)
        with torch.no_grad():
            embeds = self.model.get_input_embeddings()(ids)
            vision = torch.cat(
                list(self.model.model.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output)
            )
            embeds[ids == self.model.config.image_token_id] = vision
        mask = (ids[0] != self.pad).long() if self.pad is not None else torch.ones(ids.shape[1], dtype=torch.long)
        return embeds, mask

    def query_hidden(self, embeds, mask, queries):
        """The mask pass: post-norm hidden states ``[1, Q, H]`` of ``queries [Q, H]`` after the prefix, with the
        runtime's positions (``ReasonerPipeline.query_hidden``); gradients reach the queries only."""
        import torch
        from transformers import DynamicCache

        full = torch.cat([mask, torch.ones(len(queries), dtype=torch.long)])
        pos = torch.where(full > 0, full.cumsum(0) - 1, torch.ones_like(full))
        t = embeds.shape[1]
        cache = DynamicCache(config=self.model.config.text_config)
        with torch.no_grad():
            self.lm(
                inputs_embeds=embeds,
                position_ids=pos[None, None, :t].expand(3, 1, t),
                attention_mask=mask[None],
                use_cache=True,
                **{self._cache_arg: cache},
            )
        out = self.lm(
            inputs_embeds=queries[None],
            position_ids=pos[None, None, t:].expand(3, 1, len(queries)),
            attention_mask=full[None],
            use_cache=True,
            **{self._cache_arg: cache},
        )
        return out.last_hidden_state

    def features(self, image: np.ndarray) -> dict:
        from segzero_edge.reference.torch_sam2 import encode_image, official_preprocess

        return encode_image(self.sam, official_preprocess(image, self.sam.image_size))

    def decode(self, feats: dict, token):
        """SAM2's four mask tokens for one prompt token ``[1, 1, D]`` (no points, no-mask dense prompt)."""
        import torch

        from segzero_edge.sam2.contract import HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, IMAGE_EMBED

        pe = self.sam.sam_prompt_encoder
        sparse, dense = pe(points=None, boxes=None, masks=None)
        low_res, iou, _, obj = self.sam.sam_mask_decoder.predict_masks(
            image_embeddings=feats[IMAGE_EMBED],
            image_pe=pe.get_dense_pe(),
            sparse_prompt_embeddings=torch.cat([sparse, token], dim=1),
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[feats[HIGH_RES_FEATS_0], feats[HIGH_RES_FEATS_1]],
        )
        return low_res, iou, obj


def completions(world: _World, samples, path: Path) -> list[list[int]]:
    """The reasoner's greedy completions (token ids, EOS included) under LENS's prompt, cached in ``path``."""
    from segzero_edge.reasoner.generate import GenerationOptions

    done: list[list[int]] = json.loads(path.read_text()) if path.exists() else []
    opts = GenerationOptions(max_new_tokens=MAX_NEW_TOKENS, constrained=False, stop_at_answer=False)
    t0 = time.perf_counter()
    for i in range(len(done), len(samples)):
        scene, query = samples[i]
        done.append(list(world.reasoner.generate(scene.image, query.text, opts).token_ids))
        if (i + 1) % 100 == 0 or i + 1 == len(samples):
            path.write_text(json.dumps(done))
            log.info("completions %d/%d (%.0f s)", i + 1, len(samples), time.perf_counter() - t0)
    return done[: len(samples)]


def _loss(low_res, iou, obj, target):
    """Binary cross-entropy + dice at the scene size on the single-mask token (the one LENS reads) and on the
    best of the three multimask tokens (SAM's rule), the IoU head's MSE on all four, and the object score
    towards "present". The multimask tokens and their IoUs are trained because the runtime's single-mask choice
    falls back to them when token 0 is unstable (SAM2's stability rule): trained on token 0 alone, the head
    reached IoU 0.16 on token 0 and 0.03 after the fallback, which picked untrained tokens in 35 of 40 test
    scenes. (``world.sam2_train``'s focal x 20 + dice collapsed to empty masks here: the targets cover a few %
    of the scene.)"""
    import torch
    import torch.nn.functional as F

    from .sam2_train import dice_loss

    logits = F.interpolate(low_res, size=target.shape[-2:], mode="bilinear", align_corners=False)  # [1, 4, S, S]
    t = target.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none").flatten(2).mean(-1)
    per = bce + dice_loss(logits, t)  # [1, 4]
    mask = per[:, 0].mean() + per[:, 1:].min(dim=1).values.mean()
    with torch.no_grad():
        pred, gt = logits > 0, t > 0.5
        union = (pred | gt).flatten(2).sum(-1).float()
        true_iou = torch.where(union > 0, (pred & gt).flatten(2).sum(-1).float() / union.clamp(min=1), 1.0)
    iou_loss = F.mse_loss(iou, true_iou)
    obj_loss = F.binary_cross_entropy_with_logits(obj, torch.ones_like(obj))
    parts = {"mask": mask.item(), "iou": iou_loss.item(), "obj": obj_loss.item(), "train_iou": float(true_iou[0, 0])}
    return mask + iou_loss + obj_loss, parts


def train_lens_head(
    out: Path,
    *,
    samples: int = SAMPLES,
    steps: int = STEPS,
    batch: int = BATCH,
    seed: int = 0,
    threads: int = 2,
    reasoner: Path = ASSETS / "reasoner",
) -> Path:
    """Train the head (module docstring) into ``out``; returns ``out/head.safetensors``."""
    import torch
    from safetensors.torch import save_file

    from segzero_edge.reference.lens import make_context_module

    from .scenes import generate_samples

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    world = _World(reasoner, threads)
    data = generate_samples(SPLITS["train"].seed, samples, SCENE_SIZE)
    comps = completions(world, data, out / "completions.json")
    t0 = time.perf_counter()
    feats = [world.features(scene.image) for scene, _ in data]
    targets = [torch.from_numpy(scene.masks[q.target].astype(np.float32))[None, None] for scene, q in data]
    log.info("SAM2 features of %d scenes in %.0f s", len(data), time.perf_counter() - t0)

    torch.manual_seed(seed)
    dim = world.sam.sam_prompt_encoder.embed_dim
    context = make_context_module(NUM_QUERIES, world.hidden, dim).train()
    queries = torch.nn.Parameter(torch.randn(NUM_QUERIES, world.hidden) * 0.02)
    tuned = [p for n, p in world.sam.named_parameters() if _tuned(n)]
    for n, p in world.sam.named_parameters():
        p.requires_grad_(_tuned(n))
    world.sam.train()
    opt = torch.optim.AdamW(
        [
            {"params": [queries, *context.parameters()], "lr": LR_HEAD},
            {"params": tuned, "lr": LR_SAM2},
        ],
        weight_decay=0.0,
    )
    base = [g["lr"] for g in opt.param_groups]
    rng = np.random.default_rng(seed)
    log_rows, t0 = [], time.perf_counter()
    for step in range(steps):
        scale = min(1.0, (step + 1) / 50) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * scale
        opt.zero_grad()
        parts_sum: dict[str, float] = {}
        for i in rng.choice(len(data), size=batch, replace=False):
            scene, query = data[i]
            embeds, mask = world.prefix(scene.image, query.text, comps[i])
            token = context(world.query_hidden(embeds, mask, queries))
            low_res, iou, obj = world.decode(feats[i], token)
            loss, parts = _loss(low_res, iou, obj, targets[i])
            (loss / batch).backward()
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v / batch
        opt.step()
        if step % 25 == 0 or step + 1 == steps:
            log_rows.append({"step": step, "s": round(time.perf_counter() - t0, 1), **parts_sum})
            log.info("lens head step %d/%d %s", step + 1, steps, {k: round(v, 4) for k, v in parts_sum.items()})
    state = {"learnable_query": queries.detach()[None].contiguous()}
    state.update({k: v.detach().contiguous() for k, v in context.state_dict().items()})
    state.update({f"sam.{k}": v.detach().contiguous() for k, v in world.sam.state_dict().items() if _tuned(k)})
    head = out / "head.safetensors"
    # float16 on disk: the shipped head stays under the repository's 10 MB per file (12.2 MB as float32);
    # build_world_lens_checkpoint upcasts, and the table is measured on the float16 values
    save_file({k: v.half() for k, v in state.items()}, str(head), metadata={"format": "pt"})
    meta = {
        "samples": samples,
        "steps": steps,
        "batch": batch,
        "seed": seed,
        "threads": threads,
        "template": TEMPLATE,
        "num_queries": NUM_QUERIES,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "log": log_rows,
    }
    (out / "train_log.json").write_text(json.dumps(meta, indent=1) + "\n")
    return head


def build_world_lens_checkpoint(
    out_dir: Path, *, head: Path = HEAD_FILE, reasoner: Path = ASSETS / "reasoner", sam2: Path = WORLD_SAM2
) -> Path:
    """A LENS checkpoint in the published layout (``reference/builders/lens.py``) from the world reasoner,
    the world SAM2 and a trained head; its ``segzero_edge.json`` records the reasoner's input size and the
    family ``lens``. ``out_dir`` must be new or empty."""
    from safetensors.torch import load_file, save_file

    from segzero_edge.prompt import CHECKPOINT_META_FILE, read_checkpoint_meta, write_checkpoint_meta
    from segzero_edge.reference.builders.lens import lens_key_name
    from segzero_edge.reference.lens import SAM2_MEMORY_PREFIXES
    from segzero_edge.reference.sam2_model import read_state_dict

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {lens_key_name(k): v for k, v in load_file(str(reasoner / "model.safetensors")).items()}
    for k, v in read_state_dict(sam2).items():
        if not k.startswith(SAM2_MEMORY_PREFIXES):
            state["sam." + k] = v
    trained = {k: v.float() for k, v in load_file(str(head)).items()}  # shipped as float16 (repository size)
    state.update(trained)
    save_file(
        {k: v.contiguous() for k, v in state.items()}, str(out_dir / "model.safetensors"), metadata={"format": "pt"}
    )
    config = json.loads((reasoner / "config.json").read_text())
    config["model_type"] = "qwen2_vl"
    config["vision_config"]["model_type"] = "qwen2_vl"
    config.update(num_of_query=int(trained["learnable_query"].shape[1]), if_use_qwen_connector=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for f in reasoner.iterdir():
        if f.is_file() and f.name not in (
            "config.json",
            "model.safetensors",
            CHECKPOINT_META_FILE,
            "training_meta.json",
        ):
            shutil.copy2(f, out_dir / f.name)
    write_checkpoint_meta(out_dir, input_size=read_checkpoint_meta(reasoner)["input_size"], family="lens")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m segzero_edge.world train-lens-head",
        description="Train a LENS head (queries, connector, SAM2 decoder) on the frozen world reasoner.",
        epilog=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="run folder (completions.json, head.safetensors, log)")
    p.add_argument("--samples", type=int, default=SAMPLES, help=f"first N train scenes (default {SAMPLES})")
    p.add_argument("--steps", type=int, default=STEPS, help=f"optimizer steps (default {STEPS})")
    p.add_argument("--batch", type=int, default=BATCH, help=f"samples per step (default {BATCH})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    head = train_lens_head(
        args.out, samples=args.samples, steps=args.steps, batch=args.batch, seed=args.seed, threads=args.threads
    )
    print(f"head: {head}")
    return 0
