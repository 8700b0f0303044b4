"""Checkpoints: which one to resume from, and what the final checkpoint carries.

HF ``Trainer`` writes ``output_dir/checkpoint-<step>/`` every ``run.save_steps`` steps: weights,
optimizer and scheduler state, RNG states and ``trainer_state.json`` (written last). A run killed with
``kill -9`` can leave a half-written newest checkpoint; ``find_resume_checkpoint`` only returns complete
ones, so ``run.resume=auto`` continues from the newest checkpoint that can really be resumed.

The final checkpoint (``output_dir/final``) is a plain HF Qwen2.5-VL directory (config, weights,
tokenizer, image processor, chat template) plus:

* ``segzero_edge.json``: the prompt contract (prompt version, model input size), which
  ``segzero-edge export reasoner`` reads;
* ``training_meta.json``: the resolved config, the prompt version, the package versions, the data
  report and the TRL options the run used.
"""

from __future__ import annotations

import json
import logging
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from segzero_edge.errors import CheckpointError
from segzero_edge.prompt import PROMPT_VERSION, SEG_ZERO, write_checkpoint_meta

logger = logging.getLogger(__name__)

TRAINING_META_FILE = "training_meta.json"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model_fsdp.bin",
)
PACKAGES = (
    "segzero-edge",
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "datasets",
    "deepspeed",
    "vllm",
    "tokenizers",
    "numpy",
    "scipy",
    "pillow",
)


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be resumed from (None when it is a complete checkpoint)."""
    path = Path(path)
    if not path.is_dir():
        return "not a directory"
    state = path / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (the save was interrupted)"
    try:
        json.loads(state.read_text())
    except ValueError:
        return "trainer_state.json is truncated"
    if not any((path / w).exists() for w in _WEIGHTS) and not any(path.glob("pytorch_model_fsdp_*")):
        return "no model weights"
    has_optimizer = (
        (path / "optimizer.pt").is_file()  # plain / DDP
        or (path / "optimizer.bin").is_file()  # FSDP, full state dict
        or any(path.glob("optimizer_*"))  # FSDP, sharded state dict
        or any(path.glob("global_step*"))  # DeepSpeed
    )
    if not has_optimizer:
        return "no optimizer state"
    return None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """``checkpoint-<step>`` directories of ``output_dir``, oldest step first."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out.iterdir() if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def find_resume_checkpoint(output_dir: str | Path, resume: str) -> str | None:
    """The checkpoint to resume from for ``run.resume`` (``auto``, ``never`` or a directory), or None."""
    if resume == "never":
        if list_checkpoints(output_dir):
            logger.warning("run.resume=never: starting from scratch although %s holds checkpoints", output_dir)
        return None
    if resume != "auto":
        problem = checkpoint_problem(resume)
        if problem:
            raise CheckpointError(
                f"cannot resume from {resume}: {problem}",
                hint="pick a complete checkpoint-<step> directory, or run.resume=auto",
            )
        return str(resume)
    for ckpt in reversed(list_checkpoints(output_dir)):
        problem = checkpoint_problem(ckpt)
        if problem is None:
            return str(ckpt)
        logger.warning("skipping %s: %s", ckpt, problem)
    return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide training results (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_training_meta(
    final_dir: str | Path,
    *,
    config: dict[str, Any],
    input_size: int,
    family: str = SEG_ZERO,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``segzero_edge.json`` and ``training_meta.json`` into the final checkpoint directory."""
    final_dir = Path(final_dir)
    write_checkpoint_meta(final_dir, input_size=input_size, family=family)
    meta = {
        "format": "segzero-edge-training-meta/1",
        "prompt_version": PROMPT_VERSION,
        "input_size": input_size,
        "family": family,
        "config": config,
        "packages": package_versions(),
        **(extra or {}),
    }
    path = final_dir / TRAINING_META_FILE
    path.write_text(json.dumps(meta, indent=2, sort_keys=False, default=str) + "\n")
    return path


def read_training_meta(checkpoint_dir: str | Path) -> dict[str, Any]:
    """The ``training_meta.json`` of a checkpoint written by ``segzero-edge train``."""
    path = Path(checkpoint_dir) / TRAINING_META_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} not found", hint="only checkpoints written by `segzero-edge train` have it")
    return json.loads(path.read_text())
