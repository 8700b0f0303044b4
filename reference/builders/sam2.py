"""Random-weight SAM2 checkpoints in the official format, for tests, the demo and benchmarks.

The file is exactly what ``facebookresearch/sam2`` ships: a torch pickle ``{"model": state_dict}``,
loadable with ``sam2.build_sam.build_sam2(config, ckpt_path)`` (strict key check) and with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from segzero_edge.files import writable_parent
from segzero_edge.reference.sam2_model import build_sam2_model as _build_from_config
from segzero_edge.sam2.configs import resolve_sam2_config

log = logging.getLogger(__name__)


def build_sam2_model(config: str = "sam2.1_hiera_t", *, seed: int = 0):
    """An official ``SAM2Base`` model with seeded random weights, in eval mode on the CPU."""
    import torch

    config_path = resolve_sam2_config(config)
    torch.manual_seed(seed)
    return _build_from_config(config_path)


def build_sam2_checkpoint(out_path: str | Path, config: str = "sam2.1_hiera_t", *, seed: int = 0) -> Path:
    """Write a random-weight SAM2 checkpoint for ``config`` to ``out_path``.

    Args:
        out_path: the ``.pt`` file to write (parent folders are created).
        config: any official config name (see ``resolve_sam2_config``), e.g. ``"sam2.1_hiera_t"``, or a
            config file in the official format.
        seed: torch seed; the same seed gives the same weights.

    Returns:
        ``out_path`` as a ``Path``.
    """
    import torch

    out_path = writable_parent(out_path)
    model = build_sam2_model(config, seed=seed)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        torch.save({"model": model.state_dict()}, tmp)
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "wrote random SAM2 checkpoint %s (%s, %.1fM params, seed %d)",
        out_path,
        resolve_sam2_config(config),
        n_params / 1e6,
        seed,
    )
    return out_path
