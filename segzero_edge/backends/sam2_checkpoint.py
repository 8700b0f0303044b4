"""Load an official SAM2 checkpoint into the official model, strictly, with clear errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ..errors import CheckpointError
from ..sam2.configs import SAM2_CONFIGS, resolve_sam2_config

log = logging.getLogger(__name__)

#: Hiera trunk (embed dim, number of blocks) -> size letter of the official configs.
_TRUNKS = {(96, 12): "t", (96, 16): "s", (112, 24): "b+", (144, 48): "l"}


def guess_config(state_dict: Mapping[str, object]) -> str | None:
    """The official config a state dict was most likely trained with (None if unknown).

    Uses the trunk's patch-embedding width and block count, and the keys SAM 2.1 added
    (``no_obj_embed_spatial``) to tell 2.1 from 2.0.
    """
    w = state_dict.get("image_encoder.trunk.patch_embed.proj.weight")
    if w is None or not hasattr(w, "shape"):
        return None
    blocks = {k.split(".")[3] for k in state_dict if k.startswith("image_encoder.trunk.blocks.")}
    size = _TRUNKS.get((int(w.shape[0]), len(blocks)))
    if size is None:
        return None
    family = "sam2.1" if "no_obj_embed_spatial" in state_dict else "sam2"
    return f"configs/{family}/{family}_hiera_{size}.yaml"


def _load_error(exc: Exception) -> str:
    """The informative part of a ``torch.load`` error (its messages run to several paragraphs)."""
    text = str(exc)
    if "WeightsUnpickler error" in text:
        after = text.split("WeightsUnpickler error", 1)[1].lstrip(": \n").split("\n")[0].strip()
        return f"the weights-only unpickler refused it ({after or 'unsupported content'})"
    first = text.strip().split("\n")[0] if text.strip() else type(exc).__name__
    return first.split(". ")[0].rstrip(".")


def read_state_dict(path: str | Path) -> Mapping[str, object]:
    """The ``"model"`` state dict of an official SAM2 ``.pt`` file, read with ``weights_only=True``.

    Raises:
        CheckpointError: missing, unreadable or corrupt file, or not the official format.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"SAM2 checkpoint {path} does not exist",
            hint="pass the .pt file downloaded from the SAM2 release (e.g. sam2.1_hiera_tiny.pt)",
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # on damaged bytes the unpickler raises many types (IndexError, EOFError, ...)
        raise CheckpointError(
            f"cannot read SAM2 checkpoint {path}: {_load_error(exc)}",
            hint="the file is corrupt, truncated, not a torch checkpoint, or holds Python objects besides "
            "tensors (refused by weights_only=True): download the official checkpoint again",
        ) from exc
    if not isinstance(obj, Mapping) or not isinstance(obj.get("model"), Mapping):
        keys = sorted(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{path} is not an official SAM2 checkpoint: expected {{'model': state_dict}}, got {keys}",
            hint="pass a checkpoint in the facebookresearch/sam2 release format",
        )
    return obj["model"]


def load_sam2_model(path: str | Path, config: str):
    """The official ``SAM2Base`` for ``config`` with the checkpoint's weights, in eval mode on the CPU.

    Built with ``sam2.build_sam.build_sam2(..., apply_postprocessing=True)`` (the image predictor's
    settings, including the single-mask stability fallback), then loaded with strict key matching.

    Raises:
        InputError: unknown config (lists the valid names).
        CheckpointError: unreadable file, or keys/shapes that do not match the config; the message
            counts missing, unexpected and mis-shaped keys and suggests the matching config.
    """
    from sam2.build_sam import build_sam2

    config_path = resolve_sam2_config(config)
    state = read_state_dict(path)
    model = build_sam2(config_path, ckpt_path=None, device="cpu", mode="eval")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    reshaped = [
        k
        for k in expected
        if k in state and tuple(getattr(state[k], "shape", ())) != tuple(expected[k].shape)
    ]
    if missing or unexpected or reshaped:
        guess = guess_config(state)
        examples = ", ".join((missing + unexpected + reshaped)[:3])
        hint = (
            f"this looks like a {guess.split('/')[-1].removesuffix('.yaml')} checkpoint: pass --config "
            f"{guess.split('/')[-1].removesuffix('.yaml')}"
            if guess and guess != config_path
            else "pass the --config the checkpoint belongs to: "
            + ", ".join(c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS)
        )
        raise CheckpointError(
            f"checkpoint {path} does not match config {config_path}: {len(missing)} keys missing, "
            f"{len(unexpected)} unexpected, {len(reshaped)} with another shape (e.g. {examples})",
            hint=hint,
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    log.info("loaded %s into %s (%d tensors)", path, config_path, len(expected))
    return model
