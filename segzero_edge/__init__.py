"""segzero-edge: run Seg-Zero reasoning segmentation on robots.

The runtime package is torch-free: importing it loads numpy and the contract modules only.
``Segmenter`` (``segzero_edge.segmenter``) runs the two-stage pipeline; ``decode_answer`` lives in
``segzero_edge.answer``.
"""

from ._version import __version__
from .answer import decode_answer
from .errors import SegZeroError
from .prompt import PROMPT_VERSION
from .reasoner import GenerationOptions
from .segmenter import Segmenter, SegmenterOptions
from .types import Answer, AnswerObject, GenerationStats, ObjectMask, Segmentation

__all__ = [
    "PROMPT_VERSION",
    "Answer",
    "AnswerObject",
    "GenerationOptions",
    "GenerationStats",
    "ObjectMask",
    "SegZeroError",
    "Segmentation",
    "Segmenter",
    "SegmenterOptions",
    "__version__",
    "decode_answer",
]
