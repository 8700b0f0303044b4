"""`segzero-edge export reasoner`: bad checkpoints, sizes and precisions are named; exports are all-or-nothing."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segzero_edge.errors import CheckpointError, ConfigError, ExportValidationError, InputError
from segzero_edge.manifest import load_manifest, sha256_file

pytest.importorskip("torch")

from segzero_edge.export.reasoner_export import onnx_export
from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
from segzero_edge.reasoner import contract as reasoner_contract

QUICK = ReasonerExportConfig(weights="fp32", validate="none")


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def test_non_qwen_checkpoint_is_named(tiny_qwen_dir, tmp_path):
    ckpt = _copy(tiny_qwen_dir, tmp_path)
    cfg = json.loads((ckpt / "config.json").read_text())
    (ckpt / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    with pytest.raises(CheckpointError, match=r"config\.json.*'llama'"):
        export_reasoner(ckpt, tmp_path / "out", QUICK)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "missing",
    ["tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "config.json", "model.safetensors"],
)
def test_missing_files_are_named(tiny_qwen_dir, tmp_path, missing):
    ckpt = _copy(tiny_qwen_dir, tmp_path)
    (ckpt / missing).unlink()
    with pytest.raises(
        CheckpointError, match=missing.replace(".", r"\.") if missing != "model.safetensors" else r"safetensors"
    ):
        export_reasoner(ckpt, tmp_path / "out", QUICK)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "header"])
def test_damaged_weights_are_named(tiny_qwen_dir, tmp_path, damage):
    ckpt = _copy(tiny_qwen_dir, tmp_path)
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) - 100] if damage == "truncated" else b"version https://git-lfs\n")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        export_reasoner(ckpt, tmp_path / "out", QUICK)
    assert not (tmp_path / "out").exists()


def test_not_a_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        export_reasoner(tmp_path / "nothing", tmp_path / "out", QUICK)


@pytest.mark.parametrize("size", [100, 3612])
def test_unsupported_image_size_is_named(tiny_qwen_dir, tmp_path, size):
    with pytest.raises(InputError, match=str(size)):
        export_reasoner(tiny_qwen_dir, tmp_path / "out", ReasonerExportConfig(weights="fp32", input_size=size))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"weights": "int3"}, "int3"),
        ({"weights": "bf16"}, "bf16"),
        ({"lm_head": "int2"}, "int2"),
        ({"block_size": 48}, "48"),
        ({"validate": "full", "validation_pairs": 2}, "5"),
    ],
)
def test_unsupported_options_are_named(kwargs, named):
    with pytest.raises(ConfigError, match=named):
        ReasonerExportConfig(**kwargs)


def test_cli_refuses_unknown_precision(tiny_qwen_dir, tmp_path, capsys):
    from segzero_edge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["export", "reasoner", "--model", str(tiny_qwen_dir), "--out", str(tmp_path / "o"), "--weights", "int3"])
    assert exc.value.code == 2 and "int3" in capsys.readouterr().err


def test_cli_refuses_bad_int8_layers(tiny_qwen_dir, tmp_path, capsys):
    from segzero_edge.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "export",
                "reasoner",
                "--model",
                str(tiny_qwen_dir),
                "--out",
                str(tmp_path / "o"),
                "--int8-layers",
                "first",
            ]
        )
    assert exc.value.code == 2 and "layer indices" in capsys.readouterr().err


def test_failed_validation_writes_nothing(tiny_qwen_dir, tmp_path, monkeypatch):
    from segzero_edge.export.reasoner_export import validate

    def failing(*args, **kwargs):
        raise ExportValidationError("injected disagreement", numbers={"greedy_identical": 0})

    monkeypatch.setattr(validate, "validate_reasoner", failing)
    out = tmp_path / "out"
    with pytest.raises(ExportValidationError, match="injected"):
        export_reasoner(tiny_qwen_dir, out, ReasonerExportConfig(weights="fp32", validate="quick"))
    assert not out.exists() and _leftovers(out) == []


def test_interrupted_reexport_keeps_the_previous_engine(engine_fp32, tiny_qwen_dir, tmp_path, monkeypatch):
    out = tmp_path / "engine"
    shutil.copytree(engine_fp32, out)
    before = {p.relative_to(out).as_posix(): sha256_file(p) for p in out.rglob("*") if p.is_file()}
    real = onnx_export.build_decoder

    def interrupted(*args, progress=None, **kwargs):
        real(*args, progress=progress, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C after the decoder was written into the temporary directory

    monkeypatch.setattr(onnx_export, "build_decoder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_reasoner(tiny_qwen_dir, out, ReasonerExportConfig(weights="int8", validate="none"))
    after = {p.relative_to(out).as_posix(): sha256_file(p) for p in out.rglob("*") if p.is_file()}
    assert after == before and _leftovers(out) == []
    load_manifest(out, verify="full")


def test_reasoner_joins_an_engine_dir_with_another_component(tiny_qwen_dir, tmp_path):
    from segzero_edge.export.engine_dir import EngineDirWriter

    out = tmp_path / "engine"
    with EngineDirWriter(out, "sam2") as w:  # a stand-in second component
        w.path("sam2/note.txt").write_text("sam2 files live here")
        w.commit(settings={"kind": "stand-in"}, graphs={})
    m = export_reasoner(tiny_qwen_dir, out, QUICK)
    assert m.has_component("sam2") and m.has_component("reasoner")
    assert (out / "sam2/note.txt").read_text() == "sam2 files live here"
    m2 = export_reasoner(tiny_qwen_dir, out, ReasonerExportConfig(weights="int8", block_size=32, validate="none"))
    assert m2.graph(reasoner_contract.DECODER).precision == "int8" and m2.has_component("sam2")
    assert load_manifest(out, verify="full").graph(reasoner_contract.DECODER).precision == "int8"


def test_cli_export_end_to_end(tiny_qwen_dir, tmp_path):
    from segzero_edge.cli import main

    out = tmp_path / "engine"
    rc = main(
        [
            "export",
            "reasoner",
            "--model",
            str(tiny_qwen_dir),
            "--out",
            str(out),
            "--weights",
            "int8",
            "--block-size",
            "32",
            "--validate",
            "quick",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    m = load_manifest(out, verify="full")
    assert m.graph(reasoner_contract.DECODER).precision == "int8"
    assert m.validation["reasoner"]["greedy_identical_to_dequantized_torch"] == 2


def test_killed_export_leaves_nothing(tiny_qwen_dir, tmp_path):
    out = tmp_path / "engine"
    cmd = [
        sys.executable,
        "-m",
        "segzero_edge",
        "export",
        "reasoner",
        "--model",
        str(tiny_qwen_dir),
        "--out",
        str(out),
        "--weights",
        "fp32",
        "--validate",
        "quick",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _leftovers(out) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the export finished before it could be interrupted"
    time.sleep(0.3)  # inside the export now
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not out.exists() and _leftovers(out) == []


@pytest.mark.parametrize("layout", ["inline", "one_file_per_tensor"])
def test_vision_weights_are_consolidated_into_one_file(engine_fp32, tmp_path, layout):
    """Graphs over 1 GiB get one page-aligned .data file, streamed from whatever the exporter wrote."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from segzero_edge.export.reasoner_export.graph_files import consolidate_graph

    raw = tmp_path / "raw" / "vision.onnx"
    raw.parent.mkdir()
    model = onnx.load(str(engine_fp32 / "reasoner/vision.onnx"))
    onnx.save_model(
        model,
        str(raw),
        save_as_external_data=layout != "inline",
        all_tensors_to_one_file=False,
        size_threshold=0,
        convert_attribute=True,
    )
    if layout != "inline":  # like torch's TorchScript exporter: one file per tensor (Constant values included),
        m = onnx.load(str(raw), load_external_data=False)  # no offset/length recorded
        from onnx.external_data_helper import _get_all_tensors

        assert any(
            t.data_location == onnx.TensorProto.EXTERNAL
            for n in m.graph.node
            for a in n.attribute
            for t in ([a.t] if a.type == onnx.AttributeProto.TENSOR else [])
        )
        for t in _get_all_tensors(m):
            if t.data_location != onnx.TensorProto.EXTERNAL:
                continue
            keep = [(e.key, e.value) for e in t.external_data if e.key == "location"]
            del t.external_data[:]
            for k, v in keep:
                entry = t.external_data.add()
                entry.key, entry.value = k, v
        raw.write_bytes(m.SerializeToString())
    out = tmp_path / "out" / "vision.onnx"
    out.parent.mkdir()
    info = consolidate_graph(raw, out, threshold=0 if layout == "inline" else 1 << 40)  # external input: always
    assert info["external_data"] == ["vision.onnx.data"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["vision.onnx", "vision.onnx.data"]
    x = np.random.default_rng(0).standard_normal((64, 1176)).astype(np.float32)

    def run(p):
        return ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
            None, {reasoner_contract.PIXEL_VALUES: x}
        )

    assert np.array_equal(run(out)[0], run(engine_fp32 / "reasoner/vision.onnx")[0])


def test_memory_check_refuses_before_writing_with_the_numbers(tiny_qwen_dir, tmp_path, monkeypatch, capsys):
    """An export whose estimated peak exceeds the available memory is refused before anything is written:
    the message has both numbers and the stage; the hint names the option that fits (or says none does)."""
    from segzero_edge.cli import main
    from segzero_edge.export.reasoner_export import memory_plan
    from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint

    cfg = ReasonerExportConfig(weights="int4", validate="full")
    ckpt = inspect_checkpoint(tiny_qwen_dir)
    reader = WeightReader(ckpt.weight_files)
    plan = memory_plan.plan_export_memory(
        reader, ckpt.config, cfg, cfg.decoder_precision(), ckpt.preprocess.num_patches
    )
    stage, peak = plan.peak
    assert stage.startswith("validate") and plan.without_validation() < peak
    out = tmp_path / "out"
    monkeypatch.setattr(memory_plan, "available_memory", lambda: (peak + plan.without_validation()) // 2)
    with pytest.raises(memory_plan.ExportMemoryError) as exc:
        export_reasoner(tiny_qwen_dir, out, cfg)
    text = str(exc.value)
    assert f"{peak / 1e9:.1f} GB" in text and stage in text and "--validate none fits" in text
    assert not out.exists() and _leftovers(out) == []
    monkeypatch.setattr(memory_plan, "available_memory", lambda: plan.without_validation() // 2)
    with pytest.raises(memory_plan.ExportMemoryError, match="writing the engine alone needs"):
        export_reasoner(tiny_qwen_dir, out, cfg)
    assert main(["export", "reasoner", "--model", str(tiny_qwen_dir), "--out", str(out)]) != 0
    assert "needs about" in capsys.readouterr().err and not out.exists()
    args = ["--weights", "fp32", "--validate", "none", "--no-memory-check"]
    assert main(["export", "reasoner", "--model", str(tiny_qwen_dir), "--out", str(out), *args]) == 0
    assert load_manifest(out).component("reasoner")["weights"] == "fp32"


def test_cuda_reference_without_a_gpu_is_refused_before_writing(tiny_qwen_dir, tmp_path):
    import torch

    from segzero_edge.errors import BackendUnavailableError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "out"
    with pytest.raises(BackendUnavailableError, match="reference-device"):
        export_reasoner(tiny_qwen_dir, out, ReasonerExportConfig(weights="fp32", reference_device="cuda"))
    assert not out.exists() and _leftovers(out) == []
