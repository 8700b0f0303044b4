"""SAM2 (official checkpoints) -> ONNX graphs + manifest entries, validated against the official model.

``export_sam2(checkpoint, out_dir, config)`` is the entry point; ``segzero-edge export sam2`` calls it.
"""

from .config import Sam2ExportConfig
from .export import export_sam2

__all__ = ["Sam2ExportConfig", "export_sam2"]
