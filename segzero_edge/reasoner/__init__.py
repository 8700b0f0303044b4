"""The reasoner component: the Seg-Zero reasoning model (Qwen2.5-VL), torch-free.

``contract`` (graph and tensor names, ``ReasonerSettings``), ``pipeline`` (``ReasonerPipeline`` over a
``ReasonerBackend``), ``ort_backend`` (ONNX Runtime), ``generate`` (the loop and ``GenerationOptions``),
``preprocess`` (image preprocessing and M-RoPE positions). The prompt's text and token ids are
``segzero_edge.prompt``.
"""

from .generate import GenerationOptions, GenerationTrace, TokenConstraint, generate_loop
from .pipeline import ReasonerBackend, ReasonerPipeline, ReasonerResult, VisionEmbeds
from .preprocess import PreprocessConfig, PreprocessedImage, decode_position_ids, mrope_position_ids, preprocess_image

__all__ = [
    "GenerationOptions",
    "GenerationTrace",
    "PreprocessConfig",
    "PreprocessedImage",
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
