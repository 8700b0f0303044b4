"""The reasoner component: the Seg-Zero reasoning model (Qwen2.5-VL), torch-free.

``contract`` (graph and tensor names, ``ReasonerSettings``), ``pipeline`` (``ReasonerPipeline`` over a
``ReasonerBackend``), ``ort_backend`` (ONNX Runtime), ``generate`` (the loop and ``GenerationOptions``),
``preprocess``, ``tokenizer``, ``rope``.
"""

from .generate import GenerationOptions, GenerationTrace, TokenConstraint, generate_loop
from .pipeline import ReasonerBackend, ReasonerPipeline, ReasonerResult, VisionEmbeds
from .preprocess import PreprocessConfig, PreprocessedImage, preprocess_image
from .rope import decode_position_ids, mrope_position_ids
from .tokenizer import PromptTokenizer

__all__ = [
    "GenerationOptions",
    "GenerationTrace",
    "PreprocessConfig",
    "PreprocessedImage",
    "PromptTokenizer",
    "ReasonerBackend",
    "ReasonerPipeline",
    "ReasonerResult",
    "TokenConstraint",
    "VisionEmbeds",
    "decode_position_ids",
    "generate_loop",
    "mrope_position_ids",
    "preprocess_image",
]
