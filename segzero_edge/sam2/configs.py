"""Names of the official SAM 2 / SAM 2.1 model configs, and how user-given names map to them."""

from __future__ import annotations

from ..errors import InputError

#: Canonical Hydra config names shipped inside the official ``sam2`` package.
SAM2_CONFIGS: tuple[str, ...] = tuple(
    f"configs/{family}/{family}_hiera_{size}.yaml"
    for family in ("sam2.1", "sam2")
    for size in ("t", "s", "b+", "l")
)

_SIZE_ALIASES = {"t": "t", "tiny": "t", "s": "s", "small": "s", "b+": "b+", "base_plus": "b+",
                 "base-plus": "b+", "bplus": "b+", "l": "l", "large": "l"}


def resolve_sam2_config(name: str) -> str:
    """Map a config name to the official Hydra config path.

    Accepted forms, for every official config: ``configs/sam2.1/sam2.1_hiera_t.yaml``,
    ``sam2.1_hiera_t.yaml``, ``sam2.1_hiera_t``, ``sam2.1-hiera-tiny`` and the hub id
    ``facebook/sam2.1-hiera-tiny`` (likewise ``sam2_hiera_*`` for SAM 2.0).

    Raises:
        InputError: unknown name; the message lists the valid ones.
    """
    raw = str(name).strip()
    key = raw.removeprefix("facebook/").removeprefix("configs/").removesuffix(".yaml")
    key = key.split("/")[-1]
    for family in ("sam2.1", "sam2"):
        for sep in ("_hiera_", "-hiera-"):
            prefix = family + sep
            if key.startswith(prefix):
                size = _SIZE_ALIASES.get(key[len(prefix):])
                if size is not None:
                    return f"configs/{family}/{family}_hiera_{size}.yaml"
    valid = ", ".join(c.split("/")[-1].removesuffix(".yaml") for c in SAM2_CONFIGS)
    raise InputError(f"unknown SAM2 config {raw!r}", hint=f"use one of: {valid}")
