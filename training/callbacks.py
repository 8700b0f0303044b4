"""Training callbacks: a compact progress / metrics log and a JSON-lines metrics file.

TRL logs, per logging step, ``reward`` (the summed Seg-Zero reward), ``rewards/<component>/mean|std``,
``kl``, ``clip_ratio/*``, ``entropy``, ``completions/mean_length`` (and min/max, clipped ratio),
``frac_reward_zero_std`` (share of groups with zero reward variance), ``loss``, ``grad_norm`` and
``learning_rate``. ``MetricsLogger`` writes each such record to ``<output_dir>/metrics.jsonl`` (appended,
so a resumed run continues the same file) and logs a one-line summary with progress and ETA.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from .rewards import COMPONENTS

logger = logging.getLogger("segzero_edge.training")

#: The metrics every training log record must carry (checked by the smoke test).
REQUIRED_METRICS: tuple[str, ...] = (
    "loss",
    "reward",
    "reward_std",
    "kl",
    "entropy",
    "frac_reward_zero_std",
    "completions/mean_length",
    "completions/clipped_ratio",
    "clip_ratio/region_mean",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "grad_norm",
    "learning_rate",
    *(f"rewards/{c}/mean" for c in COMPONENTS),
)


class MetricsLogger(TrainerCallback):
    """Write every log record to ``metrics.jsonl`` and log a one-line progress summary (main process)."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self._start: float | None = None
        self._start_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.monotonic()
        self._start_step = state.global_step
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            logger.info(
                "training: step %d of %d%s",
                state.global_step,
                state.max_steps,
                " (resumed)" if state.global_step else "",
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs or "reward" not in logs:
            return
        record = {"step": state.global_step, "time": time.time(), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        done = state.global_step - self._start_step
        elapsed = time.monotonic() - (self._start or time.monotonic())
        eta = elapsed / done * (state.max_steps - state.global_step) if done > 0 else float("nan")
        parts = " ".join(f"{c}={logs.get(f'rewards/{c}/mean', float('nan')):.2f}" for c in COMPONENTS)
        logger.info(
            "step %d/%d reward=%.3f [%s] kl=%.4g clip=%.3f len=%.0f zero_std=%.2f loss=%.4g | %.0fs, eta %.0fs",
            state.global_step,
            state.max_steps,
            logs.get("reward", float("nan")),
            parts,
            logs.get("kl", float("nan")),
            logs.get("clip_ratio/region_mean", float("nan")),
            logs.get("completions/mean_length", float("nan")),
            logs.get("frac_reward_zero_std", float("nan")),
            logs.get("loss", float("nan")),
            elapsed,
            eta,
        )


class RankLog(TrainerCallback):
    """Per process, one line per optimizer step in ``<output_dir>/ranks/rank-<R>.jsonl`` (``run.rank_log``):

    ``{"step", "rank", "world_size", "completions", "prompt_ids", "weights_sha256"}`` where ``completions`` and
    ``prompt_ids`` are what this process generated and scored since the previous step (TRL splits each step's
    prompts over the processes), and ``weights_sha256`` hashes this process's trainable parameters after the
    step (every parameter, sorted by name, float32 bytes): equal on every rank when the replicas are in sync.

    ``count`` wraps a reward function (TRL calls each reward function on the local completions) to see them.
    """

    def __init__(self, output_dir: str | Path) -> None:
        self.dir = Path(output_dir) / "ranks"
        self._completions = 0
        self._ids: list[str] = []

    def count(self, func: Callable[..., list[float]]) -> Callable[..., list[float]]:
        """``func`` (a TRL reward function), also recording its completions and their prompt ids."""

        @functools.wraps(func)
        def counted(completions: list[Any], **kwargs: Any) -> list[float]:
            self._completions += len(completions)
            self._ids += [str(i) for i in kwargs.get("id", [])]
            return func(completions, **kwargs)

        return counted

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        import torch

        digest = hashlib.sha256()
        if model is not None:
            with torch.no_grad():
                for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
                    full = p.full_tensor() if hasattr(p, "full_tensor") else p  # FSDP2 DTensor shards
                    digest.update(full.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        rank = args.process_index
        record = {
            "step": state.global_step,
            "rank": rank,
            "world_size": args.world_size,
            "completions": self._completions,
            "prompt_ids": self._ids,
            "weights_sha256": digest.hexdigest(),
        }
        self._completions, self._ids = 0, []
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / f"rank-{rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
