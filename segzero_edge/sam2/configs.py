"""SAM 2 model configs: the official names (and how user-given names map to them), or a config file.

A config is either the name of an official config shipped inside the ``sam2`` package (composed by
Hydra, as ``sam2.build_sam.build_sam2`` does) or the path of a YAML file in the same official format
(``# @package _global_`` + a ``model:`` node), e.g. ``world/assets/sam2_tiny.yaml``, the world's tiny
SAM2. ``segzero_edge.reference.sam2_model.build_sam2_model`` (torch) builds either.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

#: Canonical Hydra config names shipped inside the official ``sam2`` package.
SAM2_CONFIGS: tuple[str, ...] = tuple(
    f"configs/{family}/{family}_hiera_{size}.yaml" for family in ("sam2.1", "sam2") for size in ("t", "s", "b+", "l")
)

_SIZE_ALIASES = {
    "t": "t",
    "tiny": "t",
    "s": "s",
    "small": "s",
    "b+": "b+",
    "base_plus": "b+",
    "base-plus": "b+",
    "bplus": "b+",
    "l": "l",
    "large": "l",
}


def _looks_like_file(raw: str) -> bool:
    return raw.endswith((".yaml", ".yml")) or "/" in raw or "\\" in raw


def is_config_file(config: str) -> bool:
    """True when ``config`` (as resolved by ``resolve_sam2_config``) is a config file, not an official name."""
    return str(config) not in SAM2_CONFIGS


def resolve_sam2_config(name: str | Path) -> str:
    """Map a config name to the official Hydra config path, or check a config file path.

    Accepted forms, for every official config: ``configs/sam2.1/sam2.1_hiera_t.yaml``,
    ``sam2.1_hiera_t.yaml``, ``sam2.1_hiera_t``, ``sam2.1-hiera-tiny`` and the hub id
    ``facebook/sam2.1-hiera-tiny`` (likewise ``sam2_hiera_*`` for SAM 2.0). Anything else that names
    an existing ``.yaml``/``.yml`` file is a config file in the official format; it is returned as
    given (official names win when both match).

    Raises:
        InputError: unknown name (the message lists the valid ones), or a config file that does not exist.
    """
    raw = str(name).strip()
    key = raw.removeprefix("facebook/").removeprefix("configs/").removesuffix(".yaml")
    key = key.split("/")[-1]
    for family in ("sam2.1", "sam2"):
        for sep in ("_hiera_", "-hiera-"):
            prefix = family + sep
            if key.startswith(prefix):
                size = _SIZE_ALIASES.get(key[len(prefix) :])
                if size is not None:
                    return f"configs/{family}/{family}_hiera_{size}.yaml"
    valid = ", ".join(c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS)
    if Path(raw).is_file() and raw.endswith((".yaml", ".yml")):
        return raw
    if _looks_like_file(raw):
        raise InputError(
            f"SAM2 config file {raw!r} does not exist (and it is not an official config name)",
            hint=f"pass an existing .yaml file in the official SAM2 config format, or one of: {valid}",
        )
    raise InputError(f"unknown SAM2 config {raw!r}", hint=f"use one of: {valid}, or a config .yaml file")
