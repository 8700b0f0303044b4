"""The ``"torch"`` backend plugin (entry point ``segzero_edge.backends: torch``, pyproject.toml).

``Sam2Pipeline(..., backend="torch")`` and ``ReasonerPipeline(..., backend="torch")`` (and so
``Segmenter(..., backend="torch")``) find it through ``segzero_edge.plugins.load_plugin``; the runtime core
never imports this package.
"""

from __future__ import annotations

from segzero_edge.plugins import BackendPlugin


def _open_sam2(*args, **kwargs):
    from .torch_sam2 import open_sam2_backend

    return open_sam2_backend(*args, **kwargs)


def _open_reasoner(*args, **kwargs):
    from .torch_reasoner import open_reasoner_backend

    return open_reasoner_backend(*args, **kwargs)


TORCH = BackendPlugin(name="torch", extra="torch", open_sam2=_open_sam2, open_reasoner=_open_reasoner)
