"""The SAM2 component: image -> features -> masks for boxes and points (torch-free).

``contract`` (graph and tensor names, ``Sam2Settings``), ``pipeline`` (``Sam2Pipeline`` over a
``Sam2Backend``), ``host`` (numpy preprocessing, mask choice, upsampling), ``prompts`` (prompts -> decoder
inputs), ``results`` (``Sam2Features``, ``Sam2Result``), ``ort_backend`` / ``trt_backend``.
"""

from .pipeline import Sam2Backend, Sam2Pipeline
from .results import Sam2Features, Sam2Result

__all__ = ["Sam2Backend", "Sam2Features", "Sam2Pipeline", "Sam2Result"]
