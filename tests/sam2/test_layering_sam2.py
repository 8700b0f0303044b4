"""The SAM2 runtime stage stays torch-free and never reaches into the exporter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNTIME_MODULES = [
    "segzero_edge.sam2",
    "segzero_edge.sam2.pipeline",
    "segzero_edge.sam2.ort_backend",
    "segzero_edge.sam2.trt_backend",
    "segzero_edge.sam2.trt_check",
    "segzero_edge.ort",
    "segzero_edge.trt.build",
    "segzero_edge.trt.cli",
    "segzero_edge.trt.engine",
]


def test_runtime_modules_import_no_torch_and_no_exporter():
    code = (
        "import importlib, sys\n"
        f"for m in {RUNTIME_MODULES!r}: importlib.import_module(m)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'sam2', 'onnx', "
        "'tensorrt', 'onnxruntime') or m.startswith(('segzero_edge.export', 'segzero_edge.training'))]\n"
        "print(' '.join(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported at module level: {out.stdout}"


def test_cli_subcommand_is_registered():
    from segzero_edge.export.cli import SUBCOMMANDS

    assert SUBCOMMANDS["sam2"][1] == ".sam2_export.cli"
    src = Path(__file__).resolve().parents[2] / "segzero_edge"
    for path in list((src / "sam2").glob("*.py")) + list((src / "trt").glob("*.py")) + [src / "ort.py"]:
        text = path.read_text()
        assert "segzero_edge.export" not in text and "import torch" not in text, path


def test_export_sam2_help_through_the_cli(capsys):
    import pytest

    from segzero_edge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", "sam2", "--help"])
    assert exc.value.code == 0 and "--checkpoint" in capsys.readouterr().out


def test_build_without_tensorrt_names_the_extra(tmp_path, capsys):
    import importlib.util

    import pytest

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the GPU tests cover `segzero-edge build`")
    from segzero_edge.cli import main

    assert main(["build", str(tmp_path)]) == 1
    assert "pip install 'segzero-edge[tensorrt]'" in capsys.readouterr().err
