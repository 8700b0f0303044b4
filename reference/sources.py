"""Where the torch reference backend finds the checkpoints an engine directory was exported from.

An engine directory holds ONNX graphs, not torch weights. ``manifest.json`` records each component's
source checkpoint (``Manifest.sources``: the path given to ``segzero-edge export`` and its sha256). The
torch backend (``Segmenter(..., backend="torch")``) loads:

1. the checkpoint passed explicitly (``reasoner_checkpoint=`` / ``sam2_checkpoint=``, CLI
   ``--reasoner-checkpoint`` / ``--sam2-checkpoint``), else
2. the source path recorded in the manifest, when it still exists on this machine.

With ``verify="full"`` the checkpoint's sha256 (``sha256_file`` for SAM2's ``.pt``, ``sha256_tree`` for
the reasoner's directory) must equal the recorded one, so the torch backend runs exactly the weights the
ONNX graphs were exported from; ``verify="size"``/``"none"`` skip the hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import CheckpointError
from ..manifest import Manifest, SourceCheckpoint, Verify, sha256_file, sha256_tree

log = logging.getLogger(__name__)

_ARGS = {"reasoner": ("reasoner_checkpoint", "--reasoner-checkpoint"), "sam2": ("sam2_checkpoint", "--sam2-checkpoint")}


def recorded_source(manifest: Manifest, component: str) -> SourceCheckpoint | None:
    """The manifest's source checkpoint of ``component`` (None when none was recorded)."""
    return next((s for s in manifest.sources if s.component == component), None)


def resolve_checkpoint(
    manifest: Manifest, component: str, given: str | Path | None = None, *, verify: Verify = "full"
) -> Path:
    """The checkpoint of ``component`` (``"reasoner"``: HF directory; ``"sam2"``: official ``.pt``).

    Raises:
        CheckpointError: nothing given and the recorded path is gone, or the hash differs from the
            manifest's (the message names the path and the argument to pass).
    """
    arg, flag = _ARGS[component]
    source = recorded_source(manifest, component)
    how = f"pass {arg}=... (CLI: {flag}) with the checkpoint `segzero-edge export {component}` was run on"
    if given is not None:
        path = Path(given)
        if not path.exists():
            raise CheckpointError(f"{component} checkpoint {path} does not exist", hint=how)
    elif source is None or not source.path:
        raise CheckpointError(
            f"the manifest records no {component} source checkpoint: the torch backend has no weights to load", hint=how
        )
    else:
        path = Path(source.path)
        if not path.exists():
            raise CheckpointError(
                f"the {component} checkpoint this engine was exported from ({path}) is not on this machine",
                hint=how + ", or use backend='ort'",
            )
    if verify == "full" and source is not None and source.sha256:
        digest = sha256_tree(path) if path.is_dir() else sha256_file(path)
        if digest != source.sha256:
            raise CheckpointError(
                f"{component} checkpoint {path} is not the one this engine was exported from "
                f"(sha256 {digest[:12]}..., manifest {source.sha256[:12]}...)",
                hint=how + "; or verify='none' to run other weights on purpose",
            )
    log.info("torch backend: %s weights from %s", component, path)
    return path
