"""Supervised warm-start of the world reasoner: a small loop of our own, loss on the assistant tokens only.

Why not TRL's ``SFTTrainer``: its assistant-only loss needs ``{% generation %}`` markers in the chat
template, and Qwen2.5-VL's stock template (our prompt contract, byte for byte) has none; its VLM
collator would also re-run the processor's chat template per batch. Our loop renders the prompt with
``segzero_edge.prompt.render_chat`` (the contract the runtime and GRPO use), expands the image pad to
``(S/28)^2`` tokens, and masks every prompt token with -100.

One step = ``batch_size`` rows of the Seg-Zero layout (image at S x S, ``solution`` in model pixels)
joined with the templated reasoning of the raw index folder; with ``family="vision_reasoner"`` the rows
are VisionReasoner's multi-object layout, the prompt is its text and the answer its JSON list. Data order:
one seeded permutation per epoch (``seed + epoch``). AdamW, linear warmup then cosine decay. Resumable:
``out/sft_state.pt`` (weights, optimizer, scheduler, step) is written every ``save_steps`` and at the end; a
rerun continues from it and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import ConfigError, TrainingError
from segzero_edge.prompt import (
    SEG_ZERO,
    expand_image_pads,
    num_image_tokens,
    read_checkpoint_meta,
    render_chat,
    write_checkpoint_meta,
)

from .attention import answer_token_indices, attention_loss, coverage_target, mention_token_groups
from .grounding import TokenTargets, VisionCapture, grounding_loss, make_head, record_targets
from .reasoner import target_text

logger = logging.getLogger(__name__)

STATE_FILE = "sft_state.pt"


@dataclass(frozen=True)
class SFTConfig:
    """The SFT run.

    Attributes:
        steps: optimizer steps. batch_size: rows per step. learning_rate: peak AdamW lr.
        warmup_steps: linear warmup; then cosine decay to ``min_lr_ratio * learning_rate``.
        weight_decay, max_grad_norm: AdamW decay and gradient clipping.
        seed: data order and torch seed. save_steps: resumable state every N steps. threads: torch threads.
        grounding_weight: weight of the dense grounding loss on the vision tokens (``grounding.py``);
            0 = language-model loss only.
        answer_attention_weight: weight of the answer-attention supervision (``attention.py``); 0 = off.
        attention_mentions: also supervise that head at every think phrase that describes an object (the
            record's ``mentions``; ``attention.mention_token_groups``). Needs ``answer_attention_weight``.
        grounding_digits: the grounding head also predicts each object's answer digits
            (``grounding.py``). Needs ``grounding_weight``.
    """

    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0
    save_steps: int = 100
    threads: int = 2
    grounding_weight: float = 0.0
    answer_attention_weight: float = 0.0
    attention_mentions: bool = False
    grounding_digits: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "save_steps", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SFTConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("SFTConfig: learning_rate > 0, warmup_steps >= 0, min_lr_ratio in [0, 1]")
        for name in ("grounding_weight", "answer_attention_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"SFTConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.attention_mentions and not self.answer_attention_weight:
            raise ConfigError("SFTConfig.attention_mentions needs answer_attention_weight > 0")
        if self.grounding_digits and not self.grounding_weight:
            raise ConfigError("SFTConfig.grounding_digits needs grounding_weight > 0")


@dataclass(frozen=True)
class SFTRow:
    """One training example: PNG bytes of the S x S image, prompt token ids, target token ids, the
    per-token grounding targets (only when the grounding loss is on), and for the attention supervision
    the supervised indices in ``target_ids`` with their targets: ``coverage`` is ``[n]`` (the answer's
    object, for every index) or ``[len(attn_idx), n]`` (one object per index, with mentions)."""

    png: bytes
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]
    grounding: TokenTargets | None = None
    attn_idx: tuple[int, ...] = ()
    coverage: np.ndarray | None = None


def load_rows(
    segzero_dir: Path,
    raw_train_dir: Path,
    tokenizer: Any,
    input_size: int,
    max_rows: int | None = None,
    *,
    grounding_token_px: int | None = None,
    attention_token_px: int | None = None,
    mentions: bool = False,
    digits: bool = False,
    family: str = SEG_ZERO,
) -> list[SFTRow]:
    """Join the Seg-Zero layout (image, problem, solution) with the raw split's reasoning (by id).

    ``grounding_token_px`` / ``attention_token_px``: also compute each row's grounding targets /
    answer-attention targets (merged-token side in pixels); ``mentions`` / ``digits``: see ``SFTConfig``.
    """
    import pyarrow.parquet as pq
    from PIL import Image

    raw = {r["id"]: r for r in json.loads((raw_train_dir / "index.json").read_text())}
    files = sorted((segzero_dir / "data").glob("train-*.parquet"))
    if not files:
        raise TrainingError(f"no parquet files under {segzero_dir}/data", hint="write the world dataset first")
    rows: list[SFTRow] = []
    n_img = num_image_tokens(input_size)
    for f in files:
        table = pq.read_table(f).to_pylist()
        for rec in table:
            prompt = expand_image_pads(render_chat(rec["problem"], family=family), n_img)
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            text = target_text(raw[rec["id"]]["reasoning"], rec["solution"], family)
            t_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            targets = (
                None
                if grounding_token_px is None
                else record_targets(raw_train_dir, raw[rec["id"]], input_size, grounding_token_px, digits=digits)
            )
            attn_idx, coverage = (), None
            if attention_token_px is not None:
                mask = np.asarray(Image.open(raw_train_dir / raw[rec["id"]]["mask"]))
                if not mask.any():
                    raise TrainingError(
                        f"record {rec['id']} of {raw_train_dir} has an empty target mask",
                        hint="rewrite the split, or run the SFT without --sft-attention-weight",
                    )
                if mentions:
                    attn_idx, coverage = _mention_targets(
                        tokenizer, text, raw_train_dir, raw[rec["id"]], mask, input_size, attention_token_px
                    )
                else:
                    attn_idx = answer_token_indices(tokenizer, text)
                    coverage = coverage_target(mask, input_size, attention_token_px)
            rows.append(SFTRow(rec["image"]["bytes"], tuple(p_ids), tuple(t_ids), targets, attn_idx, coverage))
            if max_rows is not None and len(rows) >= max_rows:
                return rows
    return rows


def _mention_targets(
    tokenizer: Any, text: str, split_dir: Path, record: dict, mask: np.ndarray, input_size: int, token_px: int
) -> tuple[tuple[int, ...], np.ndarray]:
    """Supervised target indices and ``[len, n]`` coverages: the think's mentions and the answer."""
    from PIL import Image

    if "mentions" not in record or "labels" not in record:
        raise TrainingError(
            f"record {record.get('id')} of {split_dir} has no mentions/labels annotation",
            hint="rewrite the split with this version (`python -m segzero_edge.world "
            "dataset`) or run the SFT without --sft-attention-mentions",
        )
    labels = np.asarray(Image.open(split_dir / record["labels"]))
    idx, objs = mention_token_groups(tokenizer, text, text.index(record["reasoning"]), record["mentions"], -1)
    cover = {-1: coverage_target(mask, input_size, token_px)}
    for k in set(objs) - {-1}:
        cover[k] = coverage_target(labels == k + 1, input_size, token_px)
    return idx, np.stack([cover[k] for k in objs])


def _pixel_batch(processor: Any, pngs: list[bytes]) -> tuple[Any, Any]:
    from PIL import Image

    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in pngs]
    out = processor.image_processor(images=images, return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


def collate(rows: list[SFTRow], processor: Any, pad_id: int) -> dict[str, Any]:
    """A right-padded batch: input_ids, attention_mask, labels (-100 on prompt and padding), pixels."""
    import torch

    seqs = [r.prompt_ids + r.target_ids for r in rows]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, s) in enumerate(zip(rows, seqs)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, len(r.prompt_ids) : len(s)] = torch.tensor(r.target_ids)
    pixel_values, grid = _pixel_batch(processor, [r.png for r in rows])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "pixel_values": pixel_values,
        "image_grid_thw": grid,
    }


def _lr_lambda(cfg: SFTConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def _batch_indices(n: int, cfg: SFTConfig, step: int) -> list[int]:
    per_epoch = n // cfg.batch_size
    if per_epoch < 1:
        raise TrainingError(f"{n} rows are fewer than one batch of {cfg.batch_size}")
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng(cfg.seed + epoch).permutation(n)
    return [int(i) for i in perm[k * cfg.batch_size : (k + 1) * cfg.batch_size]]


def run_sft(
    init_dir: Path,
    out_dir: Path,
    segzero_dir: Path,
    raw_train_dir: Path,
    cfg: SFTConfig,
    *,
    max_rows: int | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    family: str = SEG_ZERO,
) -> dict[str, Any]:
    """Fine-tune ``init_dir`` and save the HF checkpoint to ``out_dir/final``; ``family`` is the model family
    the rows teach (recorded in the checkpoint's ``segzero_edge.json``).

    ``stop_after``: leave after this many new steps with the resumable state saved and no ``final``
    (a time-boxed session; the next call continues exactly where it stopped).

    Returns ``{"losses": [per-step language-model loss], "aux": [per-step auxiliary losses, a dict of
    floats (empty when none is on)], "seconds": float, "steps": int, "final": Path | None}``.
    """
    import torch

    from segzero_edge.reference.qwen import load_qwen_model
    from segzero_edge.training.grpo import load_processor

    torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    input_size = read_checkpoint_meta(init_dir)["input_size"]
    processor = load_processor(init_dir, input_size)
    tok = processor.tokenizer
    torch.manual_seed(cfg.seed)
    # Attention probabilities come from the eager kernel only; the weights and outputs are the same model.
    model = load_qwen_model(init_dir, "float32", attn_implementation="eager" if cfg.answer_attention_weight else None)
    model.train()
    vcfg = model.config.vision_config
    token_px = vcfg.patch_size * vcfg.spatial_merge_size
    rows = load_rows(
        segzero_dir,
        raw_train_dir,
        tok,
        input_size,
        max_rows,
        grounding_token_px=token_px if cfg.grounding_weight else None,
        attention_token_px=token_px if cfg.answer_attention_weight else None,
        mentions=cfg.attention_mentions,
        digits=cfg.grounding_digits,
        family=family,
    )
    head = capture = None
    params = list(model.parameters())
    if cfg.grounding_weight:  # after the model, so the model's random state is the same either way
        head = make_head(vcfg.out_hidden_size, digits=cfg.grounding_digits)
        capture = VisionCapture(model)
        params += list(head.parameters())
    named = list(model.named_parameters()) + (list(head.named_parameters()) if head is not None else [])
    decay = [p for n, p in named if p.ndim >= 2]
    no_decay = [p for n, p in named if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.learning_rate,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    state_path = out_dir / STATE_FILE
    step, losses, aux_log = 0, [], []
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        model.load_state_dict(state["model"])
        if (head is not None) != ("grounding_head" in state):
            raise TrainingError(
                f"{state_path} was written with grounding_weight "
                f"{state['config'].get('grounding_weight', 0.0)}, this run has {cfg.grounding_weight}",
                hint="resume with the same --sft-grounding-weight, or use a new --out",
            )
        for name, flag in (
            ("answer_attention_weight", "--sft-attention-weight"),
            ("attention_mentions", "--sft-attention-mentions"),
            ("grounding_digits", "--sft-grounding-digits"),
        ):
            was, now = state["config"].get(name, SFTConfig.__dataclass_fields__[name].default), getattr(cfg, name)
            if was != now:
                raise TrainingError(
                    f"{state_path} was written with {name} {was}, this run has {now}",
                    hint=f"resume with the same {flag}, or use a new --out",
                )
        if head is not None:
            head.load_state_dict(state["grounding_head"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, losses, aux_log = int(state["step"]), list(state["losses"]), list(state.get("aux", []))
        logger.info("SFT: resuming at step %d from %s", step, state_path)

    def save() -> None:
        tmp = state_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "losses": losses,
                "aux": aux_log,
                "config": cfg.__dict__,
                **({"grounding_head": head.state_dict()} if head is not None else {}),
            },
            tmp,
        )
        tmp.replace(state_path)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="SFT", unit="step")
    start = time.perf_counter()
    first = step
    while step < cfg.steps:
        if stop_after is not None and step - first >= stop_after:
            save()
            if bar is not None:
                bar.close()
            return {
                "losses": losses,
                "aux": aux_log,
                "seconds": time.perf_counter() - start,
                "steps": step,
                "final": None,
            }
        picked = [rows[i] for i in _batch_indices(len(rows), cfg, step)]
        batch = collate(picked, processor, tok.pad_token_id)
        out = model(**batch, output_attentions=bool(cfg.answer_attention_weight))
        loss = out.loss
        total, parts = loss, {}
        if head is not None:
            aux, parts = grounding_loss(head, capture.pop(), [r.grounding for r in picked])
            total = loss + cfg.grounding_weight * aux
        if cfg.answer_attention_weight:
            queries = [tuple(len(r.prompt_ids) + i - 1 for i in r.attn_idx) for r in picked]
            attn = attention_loss(
                out.attentions, batch["input_ids"], model.config.image_token_id, queries, [r.coverage for r in picked]
            )
            parts["attn"] = float(attn.detach())
            total = total + cfg.answer_attention_weight * attn
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        opt.step()
        sched.step()
        step += 1
        losses.append(float(loss.detach()))
        aux_log.append(parts)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                loss=f"{losses[-1]:.3f}",
                lr=f"{sched.get_last_lr()[0]:.1e}",
                **{k: f"{v:.3f}" for k, v in parts.items()},
            )
        if parts and (step % 100 == 0 or step == 1):
            logger.info(
                "SFT step %d: loss %.4f, aux %s", step, losses[-1], " ".join(f"{k} {v:.4f}" for k, v in parts.items())
            )
        if step % cfg.save_steps == 0 or step == cfg.steps:
            save()
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start
    final = out_dir / "final"
    model.eval()
    model.save_pretrained(str(final))
    processor.save_pretrained(str(final))
    src = init_dir / "generation_config.json"
    if src.exists():
        (final / src.name).write_bytes(src.read_bytes())
    write_checkpoint_meta(final, input_size=input_size, family=family)
    (final / "training_meta.json").write_text(
        json.dumps(
            {
                "stage": "sft",
                "base_model": str(init_dir),
                "config": cfg.__dict__,
                "steps": step,
                "rows": len(rows),
                "final_loss_mean_last_50": float(np.mean(losses[-50:])) if losses else None,
            },
            indent=2,
        )
        + "\n"
    )
    return {"losses": losses, "aux": aux_log, "seconds": seconds, "steps": step, "final": final}
