"""The SAM2 component: image -> features -> masks for boxes and points (torch-free).

``contract`` (graph and tensor names, ``Sam2Settings``), ``pipeline`` (``Sam2Pipeline`` over a
``Sam2Backend``, with its results ``Sam2Features`` and ``Sam2Result``), ``host`` (numpy preprocessing, prompts
-> decoder inputs, mask choice, upsampling), ``ort_backend`` / ``trt_backend``.
"""

from .pipeline import Sam2Backend, Sam2Features, Sam2Pipeline, Sam2Result

__all__ = ["Sam2Backend", "Sam2Features", "Sam2Pipeline", "Sam2Result"]
