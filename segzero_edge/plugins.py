"""Stage backends that live outside the runtime core, found by entry point.

The runtime core ships the ONNX Runtime and TensorRT backends. Others register a ``BackendPlugin`` under the
entry-point group ``segzero_edge.backends`` (pyproject.toml); the torch reference backends of the torch side
(``segzero_edge.reference``, name ``"torch"``) are one. ``load_plugin`` imports a plugin only when it is asked
for, so the runtime core never imports torch or the torch side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from .errors import BackendUnavailableError

GROUP = "segzero_edge.backends"


@dataclass(frozen=True)
class BackendPlugin:
    """Backends of both stages under one name.

    Attributes:
        name: the ``backend=`` value that selects it.
        extra: the package extra that provides its dependencies (named in errors).
        open_sam2: ``(engine_dir, manifest, settings, *, device, threads, **options) -> Sam2Backend``.
        open_reasoner: ``(engine_dir, manifest, settings, *, device, threads, **options) -> ReasonerBackend``.
    """

    name: str
    extra: str
    open_sam2: Callable[..., Any]
    open_reasoner: Callable[..., Any]


def load_plugin(name: str) -> BackendPlugin:
    """The plugin registered as ``name``.

    Raises:
        BackendUnavailableError: no installed package registers it, or its dependencies are missing.
    """
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        raise BackendUnavailableError(
            f"no backend {name!r} is installed (entry points of {GROUP!r}: "
            f"{', '.join(sorted(ep.name for ep in entry_points(group=GROUP))) or 'none'})",
            hint="reinstall segzero-edge (pip install 'segzero-edge[torch]' for the torch reference backend)",
        )
    try:
        plugin = eps[0].load()
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} cannot be imported: {exc}", hint="pip install 'segzero-edge[torch]'"
        ) from exc
    if not isinstance(plugin, BackendPlugin):
        raise TypeError(f"entry point {eps[0].value} is not a segzero_edge.plugins.BackendPlugin")
    return plugin
