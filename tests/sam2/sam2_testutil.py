"""Helpers of the SAM2 tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segzero_edge.manifest import file_entry, new_manifest, save_manifest, sha256_file

CONFIG = "sam2.1_hiera_t"
#: A stand-in for the other component an engine directory may hold: the sam2 export must keep it.
REASONER_FILE = "reasoner/tokenizer.json"


def need_export_stack():
    """Skip (with the reason) unless torch, the official sam2 package and onnxruntime are importable."""
    torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
    pytest.importorskip("sam2", reason="needs the official sam2 package (make install installs it)")
    pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra: ort)")
    torch.set_num_threads(2)  # the CI machine has 2 cores
    return torch


def make_reasoner_dir(path: Path) -> Path:
    """An engine directory holding only a small 'reasoner' component (files + manifest entry)."""
    (path / "reasoner").mkdir(parents=True)
    (path / REASONER_FILE).write_text(json.dumps({"model": {"type": "BPE"}, "note": "stand-in"}))
    manifest = new_manifest().replace_component(
        "reasoner",
        settings={"input_size": 840},
        graphs={},
        files=[file_entry(path, REASONER_FILE)],
        validation={"note": "stand-in component"},
    )
    save_manifest(manifest, path)
    return path


def tree_digest(path: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``path`` (to prove a directory did not change)."""
    return {p.relative_to(path).as_posix(): sha256_file(p) for p in sorted(path.rglob("*")) if p.is_file()}


def nontrivial(mask: np.ndarray) -> bool:
    """Between 0.5% and 99.5% foreground: an IoU over such masks means something."""
    frac = float(mask.mean())
    return 0.005 < frac < 0.995
