"""A small, pure-PyTorch reference of the GRPO math (segzero_spec.md §3.4, grpo_training.md §4).

It is written from the formulas, independently of TRL, and serves as the test oracle for what TRL's
``GRPOTrainer`` computes (tests/training/test_grpo_math.py feeds the same crafted tensors to both), so
a TRL upgrade that changes the semantics fails a test instead of silently changing the recipe.

Notation: B completions, T completion tokens, G completions per prompt (groups are consecutive).

* advantages: ``A_i = (r_i - mean_group) / (std_group + eps)`` with the unbiased (n - 1) std;
  ``scale="none"`` skips the division (Dr. GRPO), ``"batch"`` uses the std of the whole batch.
  TRL uses eps = 1e-4, Seg-Zero (veRL) 1e-6.
* k3 KL per token: ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, 0 when equal). veRL clamps it to
  [-10, 10]; TRL does not (``clamp=None``).
* clipped surrogate per token: ``-min(rho * A, clip(rho, 1 - eps_low, 1 + eps_high) * A)``, with
  ``rho = exp(logp - old_logp)``.
* per-token loss = surrogate + beta * KL; aggregation ``grpo`` = mean over sequences of the per-sequence
  token means (Seg-Zero with micro-batch 1), ``bnpo`` = token mean over the batch, ``dr_grpo`` = token
  sum / (B * max_completion_length), ``dapo`` = token sum / active tokens (one micro-batch here).
* entropy bonus: ``loss - entropy_coef * token-mean entropy``.
"""

from __future__ import annotations

from typing import Any

import torch

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def group_advantages(
    rewards: torch.Tensor, num_generations: int, *, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages of ``rewards`` (shape [B], groups of ``num_generations`` in a row)."""
    if rewards.ndim != 1 or rewards.numel() % num_generations:
        raise ValueError(f"rewards of shape {tuple(rewards.shape)} do not split into groups of {num_generations}")
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1, keepdim=True)
    centred = (grouped - mean).reshape(-1)
    if scale == "none":
        return centred
    if scale == "group":
        std = grouped.std(dim=1, unbiased=True, keepdim=True).expand_as(grouped).reshape(-1)
    elif scale == "batch":
        std = rewards.std(unbiased=True).expand_as(rewards)
    else:
        raise ValueError(f"unknown scale {scale!r}")
    return centred / (std + eps)


def zero_std_fraction(rewards: torch.Tensor, num_generations: int) -> float:
    """Share of groups whose rewards are all equal (they carry no gradient)."""
    grouped = rewards.view(-1, num_generations)
    return float((grouped.max(dim=1).values == grouped.min(dim=1).values).float().mean())


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor, *, clamp: float | None = None) -> torch.Tensor:
    """Per-token k3 KL estimate of KL(pi || pi_ref) from sampled tokens (Schulman's k3)."""
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1
    return kl.clamp(-clamp, clamp) if clamp is not None else kl


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
) -> torch.Tensor:
    """Per-token PPO clipped surrogate loss; ``advantages`` is [B] or [B, T]."""
    eps_high = eps_low if eps_high is None else eps_high
    adv = advantages.unsqueeze(1) if advantages.ndim == 1 else advantages
    ratio = torch.exp(logp - old_logp)
    return -torch.min(ratio * adv, ratio.clamp(1 - eps_low, 1 + eps_high) * adv)


def aggregate(
    per_token_loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str = "grpo",
    *,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Reduce a [B, T] per-token loss over the completion ``mask`` (1 = real token)."""
    mask = mask.to(per_token_loss.dtype)
    if loss_type == "grpo":
        return ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type in ("bnpo", "dapo"):
        return (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("dr_grpo needs max_completion_length")
        return (per_token_loss * mask).sum() / (per_token_loss.shape[0] * max_completion_length)
    raise ValueError(f"unknown loss_type {loss_type!r} (use one of {LOSS_TYPES})")


def completion_mask(completion_ids: torch.Tensor, eos_ids: list[int] | int) -> torch.Tensor:
    """1 for every token up to and including the first EOS of each row, 0 after it."""
    eos = torch.tensor([eos_ids] if isinstance(eos_ids, int) else list(eos_ids))
    is_eos = torch.isin(completion_ids, eos)
    first = torch.where(
        is_eos.any(1),
        is_eos.int().argmax(1),
        torch.full_like(is_eos[:, 0], completion_ids.shape[1], dtype=torch.long),
    )
    return (torch.arange(completion_ids.shape[1]).unsqueeze(0) <= first.unsqueeze(1)).long()


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    beta: float = 5e-3,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    loss_type: str = "grpo",
    entropies: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    max_completion_length: int | None = None,
    kl_clamp: float | None = None,
) -> dict[str, Any]:
    """The full GRPO loss of one micro-batch and the metrics TRL logs for it.

    Returns:
        ``{"loss", "kl", "clip_low", "clip_high", "clip_region", "entropy"}``: the loss tensor and the
        token means of the KL and of the clipping indicators.
    """
    per_token = clipped_surrogate(logp, old_logp, advantages, eps_low=eps_low, eps_high=eps_high)
    m = mask.to(logp.dtype)
    out: dict[str, Any] = {}
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs ref_logp")
        kl = k3_kl(logp, ref_logp, clamp=kl_clamp)
        per_token = per_token + beta * kl
        out["kl"] = float(((kl * m).sum() / m.sum()).detach())
    loss = aggregate(per_token, mask, loss_type, max_completion_length=max_completion_length)
    if entropies is not None:
        mean_entropy = (entropies * m).sum() / m.sum().clamp(min=1.0)
        out["entropy"] = float(mean_entropy.detach())
        if entropy_coef:
            loss = loss - entropy_coef * mean_entropy
    adv = advantages.unsqueeze(1) if advantages.ndim == 1 else advantages
    eps_high = eps_low if eps_high is None else eps_high
    ratio = torch.exp(logp - old_logp)
    low = ((ratio < 1 - eps_low) & (adv < 0)).to(m.dtype)
    high = ((ratio > 1 + eps_high) & (adv > 0)).to(m.dtype)
    out["clip_low"] = float((low * m).sum() / m.sum())
    out["clip_high"] = float((high * m).sum() / m.sum())
    out["clip_region"] = float((((low + high) > 0).to(m.dtype) * m).sum() / m.sum())
    out["loss"] = loss
    return out
