"""The Seg-Zero reasoning model (Qwen2.5-VL) on ONNX Runtime: preprocessing, prompt, generation loop.

Torch-free: numpy, pillow, tokenizers and onnxruntime (imported when a ``Reasoner`` is created).
"""

from .engine import Reasoner, ReasonerResult
from .generate import GenerationOptions, GenerationTrace, TokenConstraint, generate_loop
from .preprocess import PreprocessConfig, PreprocessedImage, preprocess_image
from .rope import decode_position_ids, mrope_position_ids
from .tokenizer import PromptTokenizer

__all__ = [
    "GenerationOptions",
    "GenerationTrace",
    "PreprocessConfig",
    "PreprocessedImage",
    "PromptTokenizer",
    "Reasoner",
    "ReasonerResult",
    "TokenConstraint",
    "decode_position_ids",
    "generate_loop",
    "mrope_position_ids",
    "preprocess_image",
]
