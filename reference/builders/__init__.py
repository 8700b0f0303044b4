"""Random-weight checkpoints in the official formats, for tests, the demo and benchmarks.

``build_tiny_qwen25vl`` writes a Hugging Face Qwen2.5-VL directory, ``build_qwen_tokenizer`` trains its
offline tokenizer and ``build_sam2_checkpoint`` writes an official SAM2 ``.pt``. Importing this package
is cheap: torch and transformers are imported inside the functions.
"""

from .qwen import QWEN_SIZES, QwenSize, build_tiny_qwen25vl
from .sam2 import build_sam2_checkpoint
from .tokenizer import build_qwen_tokenizer, save_qwen_tokenizer

__all__ = [
    "QWEN_SIZES",
    "QwenSize",
    "build_qwen_tokenizer",
    "build_sam2_checkpoint",
    "build_tiny_qwen25vl",
    "save_qwen_tokenizer",
]
