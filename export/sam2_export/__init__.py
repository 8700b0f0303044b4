"""SAM2 (official checkpoints) -> ONNX graphs + manifest entries, validated against the official model.

``export_sam2(checkpoint, out_dir, config)`` is the entry point; ``segzero-edge export sam2`` calls it.
Attributes are imported lazily so ``segzero-edge export --help`` does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Sam2ExportConfig", "export_sam2"]
_LAZY = {"Sam2ExportConfig": ".config", "export_sam2": ".export"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
