"""The tracker component: SAM2's video memory, torch-free (reason once, track every frame).

``contract`` (graph and tensor names, ``TrackerSettings``), ``bank`` (``MemoryBank``: the fixed-shape
memory), ``pipeline`` (``TrackerPipeline``: one video step at a time over a ``TrackerBackend``),
``track`` (``Track``: the per-stream object ``Segmenter.track`` returns), ``ort_backend``.
"""

from .pipeline import TrackerBackend, TrackerPipeline
from .track import Track

__all__ = ["Track", "TrackerBackend", "TrackerPipeline"]
