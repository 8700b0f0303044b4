"""Bad input to `export sam2` and to the runtime: clear typed errors, and no half-written engine dir."""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sam2_testutil import CONFIG, need_export_stack, tree_digest

from segzero_edge.errors import (
    BackendUnavailableError,
    CheckpointError,
    EngineFileError,
    ExportValidationError,
    InputError,
    ManifestError,
)
from segzero_edge.sam2 import contract as sam2_contract


def _copy_engine(engine_dir: Path, dst: Path) -> Path:
    shutil.copytree(engine_dir, dst)
    return dst


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# -- export: config and checkpoint -----------------------------------------------------------------
def test_unknown_config_lists_valid_names(tmp_path, sam2_checkpoint):
    from segzero_edge.export.sam2_export import export_sam2

    with pytest.raises(InputError, match="unknown SAM2 config 'sam3_hiera_t'") as err:
        export_sam2(sam2_checkpoint, tmp_path / "out", "sam3_hiera_t")
    assert "sam2.1_hiera_t" in str(err.value) and "sam2_hiera_l" in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "python object", "wrong format", "missing"])
def test_unreadable_checkpoint(tmp_path, sam2_checkpoint, damage):
    torch = need_export_stack()
    from segzero_edge.export.sam2_export import export_sam2

    bad = tmp_path / "bad.pt"
    if damage == "truncated":
        bad.write_bytes(sam2_checkpoint.read_bytes()[: 1 << 20])
    elif damage == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "python object":  # refused by weights_only=True (could run code on load)
        torch.save({"model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1.0)}, bad)
    elif damage == "wrong format":
        torch.save({"state_dict": {"w": torch.zeros(2)}}, bad)
    expected = {
        "truncated": "cannot read",
        "garbage": "cannot read",
        "wrong format": "not an official SAM2",
        "python object": "weights-only unpickler refused it",
        "missing": "does not exist",
    }[damage]
    with pytest.raises(CheckpointError, match=expected):
        export_sam2(bad, tmp_path / "out", CONFIG)
    assert not (tmp_path / "out").exists()


def test_checkpoint_with_missing_and_unexpected_keys(tmp_path, sam2_checkpoint):
    torch = need_export_stack()
    from segzero_edge.reference.sam2_model import load_sam2_model

    state = torch.load(sam2_checkpoint, weights_only=True)["model"]
    for key in list(state)[:3]:
        del state[key]
    state["extra.a"] = torch.zeros(1)
    state["extra.b"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match="3 keys missing, 2 unexpected, 0 with another shape"):
        load_sam2_model(tmp_path / "edited.pt", CONFIG)


@pytest.mark.parametrize(
    ("config", "counts"),
    [
        ("sam2_hiera_t", "0 keys missing, 3 unexpected, 0 with another shape"),  # SAM 2.0 config, 2.1 weights
        ("sam2.1_hiera_s", "50 keys missing, 2 unexpected, 22 with another shape"),  # other trunk layout
    ],
)
def test_checkpoint_of_another_config_says_which(sam2_checkpoint, config, counts):
    need_export_stack()
    from segzero_edge.reference.sam2_model import load_sam2_model

    with pytest.raises(CheckpointError, match=counts) as err:
        load_sam2_model(sam2_checkpoint, config)
    assert "--config sam2.1_hiera_t" in str(err.value)  # the hint names the matching config


# -- export: failures after files were written -------------------------------------------------------
def test_failed_gates_raise_with_the_numbers(manifest):
    """The export's own numbers against gates they cannot pass: a typed error carrying the failures.

    (export_sam2 runs this check inside EngineDirWriter before commit, so a failure leaves the engine
    directory as it was: see test_engine_dir.py, and the full-disk and Ctrl-C tests below.)"""
    from segzero_edge.export.sam2_export import Sam2ExportConfig
    from segzero_edge.export.sam2_export.validate import check_gates

    numbers = dict(manifest.validation["sam2"])
    check_gates(numbers, Sam2ExportConfig(config=CONFIG))  # the defaults pass
    strict = Sam2ExportConfig(config=CONFIG, encoder_rtol=0.0, min_mask_iou=1.0, min_runtime_iou=1.0)
    worse = {**numbers, "mask_iou_min": 0.97}
    with pytest.raises(ExportValidationError, match="nothing was written") as err:
        check_gates(worse, strict)
    assert "encoder.image_embed.max_abs_diff" in err.value.numbers
    assert err.value.numbers["mask_iou_min"].startswith("0.97000 < 1.0")


_EXPORT_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys, torch
    # Ctrl-C raises KeyboardInterrupt, as at a terminal: a job started in the background by a
    # non-interactive shell (CI runners, `make test &`) inherits SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    limit = int(sys.argv[3])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    torch.set_num_threads(2)
    from segzero_edge.export.sam2_export import Sam2ExportConfig, export_sam2
    if sys.argv[4]:  # hold: once both graphs are written, say so and wait (for the test's Ctrl-C)
        import pathlib, time
        import segzero_edge.export.sam2_export.export as ex
        def held(*args, **kwargs):
            pathlib.Path(sys.argv[4]).touch()
            time.sleep(600)
        ex.validate_sam2 = held
    export_sam2(sys.argv[1], sys.argv[2], Sam2ExportConfig(config="sam2.1_hiera_t", validation_images=1))
    """
)


def _start_export(ckpt: Path, out: Path, file_size_limit: int = 0, hold: Path | None = None) -> subprocess.Popen:
    """The export in a subprocess; with ``hold``, it touches that file after writing both graphs and waits."""
    return subprocess.Popen(
        [sys.executable, "-c", _EXPORT_SCRIPT, str(ckpt), str(out), str(file_size_limit), str(hold or "")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_full_disk_leaves_engine_dir_unchanged(tmp_path, engine_dir, sam2_checkpoint):
    """A real failing write (file size limit below the 110 MB encoder) in a separate process."""
    out = _copy_engine(engine_dir, tmp_path / "engine")
    before = tree_digest(out)
    proc = _start_export(sam2_checkpoint, out, file_size_limit=40 << 20)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "File too large" in stderr, stderr[-2000:]
    assert tree_digest(out) == before and _siblings(out) == ["engine"]


def test_interrupted_export_leaves_engine_dir_unchanged(tmp_path, engine_dir, sam2_checkpoint):
    out = _copy_engine(engine_dir, tmp_path / "engine")
    before = tree_digest(out)
    held = tmp_path / "held"  # the export waits there, graphs written, validation not yet run
    proc = _start_export(sam2_checkpoint, out, hold=held)
    deadline = time.monotonic() + 240
    while not held.exists() and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.2)
    assert list(tmp_path.glob(".engine.partial-*/sam2/*.onnx")), "the graphs should be in the staging directory"
    held.unlink()
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the export ignored Ctrl-C: {proc.communicate()[1][-2000:]}") from None
    assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
    assert tree_digest(out) == before and _siblings(out) == ["engine"]


# -- runtime -----------------------------------------------------------------------------------------
def test_runtime_refuses_engine_without_sam2(tmp_path):
    from sam2_testutil import make_reasoner_dir

    from segzero_edge.sam2 import Sam2Pipeline

    with pytest.raises(ManifestError, match="no 'sam2' component") as err:
        Sam2Pipeline(make_reasoner_dir(tmp_path / "engine"), device="cpu")
    assert "segzero-edge export sam2" in str(err.value)


def test_runtime_refuses_modified_graph(tmp_path, engine_dir):
    from segzero_edge.sam2 import Sam2Pipeline

    out = _copy_engine(engine_dir, tmp_path / "engine")
    path = out / "sam2/mask_decoder.onnx"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(EngineFileError, match=r"sam2/mask_decoder\.onnx"):
        Sam2Pipeline(out, device="cpu")


def test_runtime_backend_errors(engine_dir, manifest, monkeypatch):
    from segzero_edge.sam2 import Sam2Pipeline

    with pytest.raises(InputError, match="unknown device"):
        Sam2Pipeline(engine_dir, manifest=manifest, device="tpu")
    with pytest.raises(InputError, match="runs on the GPU"):
        Sam2Pipeline(engine_dir, manifest=manifest, backend="trt", device="cpu")
    with pytest.raises(InputError, match="unknown backend"):
        Sam2Pipeline(engine_dir, manifest=manifest, backend="tflite")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(BackendUnavailableError, match=r"segzero-edge\[ort-gpu\]"):
            Sam2Pipeline(engine_dir, manifest=manifest, device="cuda")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the `ort` extra were not installed
    with pytest.raises(BackendUnavailableError, match=r"segzero-edge\[ort\]"):
        Sam2Pipeline(engine_dir, manifest=manifest, device="cpu")


def test_decode_input_errors(runtime, manifest):
    from segzero_edge.sam2 import Sam2Features

    enc = manifest.graph(sam2_contract.ENCODER)
    feats = Sam2Features(**{t.name: np.zeros(t.shape, np.float32) for t in enc.outputs}, image_size=(48, 32))
    with pytest.raises(InputError, match="give a box"):
        runtime.decode(feats)
    with pytest.raises(InputError, match="unknown mask_mode"):
        runtime.decode(feats, box=[0, 0, 10, 10], mask_mode="largest")
    with pytest.raises(InputError, match="uint8"):
        runtime.encode(np.zeros((32, 48, 3), np.float64))
