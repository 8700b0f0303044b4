"""The SAM2 stage of segzero-edge: image -> features -> masks for boxes and points (torch-free).

Public API: ``Sam2Runtime`` (``encode`` / ``decode`` / ``segment``), ``Sam2Features``, ``Sam2Result``.
Host-side pieces (preprocessing, mask choice, upsampling) are plain numpy/PIL functions in
``preprocess`` and ``postprocess``; graph and tensor names are in ``contract``.
"""

from .results import Sam2Features, Sam2Result
from .runtime import Sam2Runtime

__all__ = ["Sam2Features", "Sam2Result", "Sam2Runtime"]
