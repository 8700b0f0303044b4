"""``export lens``: LENS's published layout in, a validated engine out; bad checkpoints refused by name."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from segzero_edge.errors import CheckpointError
from segzero_edge.lens.contract import CONTEXT_GRAPHS, MASK_DECODER
from segzero_edge.manifest import load_manifest
from segzero_edge.reasoner.contract import HIDDEN_STATES

from .conftest import INPUT_SIZE, seeded_image


def test_layout_is_read_as_qwen25vl_with_lens_tensors(lens_checkpoint):
    from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint

    raw = json.loads((lens_checkpoint / "config.json").read_text())
    assert raw["model_type"] == "qwen2_vl" and raw["num_of_query"] == 8
    ckpt = inspect_checkpoint(lens_checkpoint, family="lens")
    assert type(ckpt.config).__name__ == "Qwen2_5_VLConfig" and ckpt.family == "lens"
    names = set(WeightReader(ckpt.weight_files).names())
    assert {"lens.learnable_query", "lens.conv_1d.weight", "lm.layers.0.mlp.up_proj.weight"} <= names
    assert "visual.merger.mlp.0.weight" in names and not any(n.startswith("lens.sam.memory_") for n in names)


def test_a_qwen2_vl_config_without_qwen25_vision_is_refused(lens_checkpoint, tmp_path):
    from segzero_edge.export.reasoner_export.checkpoint import inspect_checkpoint

    ckpt = tmp_path / "ckpt"
    shutil.copytree(lens_checkpoint, ckpt)
    raw = json.loads((ckpt / "config.json").read_text())
    del raw["vision_config"]["fullatt_block_indexes"]
    (ckpt / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="Qwen2-VL model"):
        inspect_checkpoint(ckpt, family="lens")


def test_the_same_checkpoint_saved_as_qwen2_5_vl_loads_too(tmp_path):
    from segzero_edge.export.reasoner_export.checkpoint import inspect_checkpoint
    from segzero_edge.reference.builders.lens import build_tiny_lens

    ckpt = build_tiny_lens(tmp_path / "c", model_type="qwen2_5_vl", num_queries=4)
    assert inspect_checkpoint(ckpt, family="lens").config.text_config.hidden_size == 64


def _rewrite(ckpt, change):
    from safetensors.torch import load_file, save_file

    path = ckpt / "model.safetensors"
    state = load_file(str(path))
    change(state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("connector.blocks.0.attn.qkv.weight"), "no 'connector.blocks.0.attn.qkv.weight'"),
        (lambda s: s.pop("learnable_query"), "not a LENS checkpoint"),
        (lambda s: s.update({"conv_1d.weight": s["conv_1d.weight"][:, :, :4]}), "'conv_1d.weight' has shape"),
        (
            lambda s: s.update(
                {"sam.sam_mask_decoder.iou_token.weight": s["sam.sam_mask_decoder.iou_token.weight"][:, :8]}
            ),
            r"'sam\.sam_mask_decoder\.iou_token\.weight'",
        ),
        (
            lambda s: s.pop("sam.image_encoder.neck.convs.0.conv.weight"),
            r"'sam\.image_encoder\.neck\.convs\.0\.conv\.weight'",
        ),
    ],
)
def test_a_bad_checkpoint_names_the_key_and_writes_nothing(lens_checkpoint, tmp_path, change, message):
    from segzero_edge.export.lens_export.export import export_lens

    ckpt = tmp_path / "ckpt"
    shutil.copytree(lens_checkpoint, ckpt)
    _rewrite(ckpt, change)
    with pytest.raises(CheckpointError, match=message):
        export_lens(ckpt, tmp_path / "engine")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_manifest_records_family_templates_variants_and_validation(lens_engine):
    m = load_manifest(lens_engine)
    reasoner, lens = m.component("reasoner"), m.component("lens")
    assert reasoner["family"] == "lens" and reasoner["prompt_template"] == "grounding"
    assert reasoner["decoder"][HIDDEN_STATES] is True
    assert lens["templates"]["grounding"].startswith("Output the bounding box of the {question}")
    assert lens["system_prompt"] == "You are a helpful assistant. "
    assert lens["context_precisions"] == ["fp32", "int8", "int4"] and lens["num_queries"] == 8
    assert {*(g for g, _ in CONTEXT_GRAPHS.values()), MASK_DECODER} <= set(m.graphs)
    v = m.validation["lens"]
    assert v["mask_pass_hidden_max_rel_diff"] <= 1e-4
    assert v["context"]["fp32"]["sparse_prompt_max_rel_diff"] <= 1e-5
    assert v["mask_decoder_iou_min"] >= 0.999 and v["end_to_end_mask_iou_min"] >= 0.999
    assert v["image_encoder"]["stock"] is True and v["image_encoder"]["tensors_differing"] == 0
    # quantization changes the token: measured, and the int4 error exceeds the int8 one
    ctx = v["context"]
    assert 0 < ctx["int8"]["sparse_prompt_max_rel_diff"] < ctx["int4"]["sparse_prompt_max_rel_diff"]


def test_quantized_context_graphs_are_weight_only_matmulnbits(lens_engine):
    import onnx

    for name, bits in (("context_int8.onnx", 8), ("context_int4.onnx", 4)):
        nodes = onnx.load(str(lens_engine / "lens" / name)).graph.node
        nbits = [n for n in nodes if n.op_type == "MatMulNBits"]
        assert len(nbits) == 4 * 4 + 3  # 4 per block (qkv, proj, fc1, fc2), conv_1d, 2 projections
        assert {a.i for n in nbits for a in n.attribute if a.name == "bits"} == {bits}
    fp32 = onnx.load(str(lens_engine / "lens" / "context.onnx")).graph.node
    assert not any(n.op_type == "MatMulNBits" for n in fp32)


def test_graphs_match_the_torch_reference_on_a_new_image(lens_engine, lens_reference, lens_segmenter):
    """The parity the export gates, recomputed here on an image and question the export never saw."""
    from segzero_edge.sam2.host import mask_iou

    image, question = seeded_image(101), "the blue thing on the left"
    ref = lens_reference.predict(image, question, max_new_tokens=12)
    seg = lens_segmenter
    vision = seg.reasoner.encode(image)
    hidden = seg.reasoner.query_hidden(question, ref.token_ids, vision, seg.lens.queries)
    assert np.abs(hidden - ref.query_hidden).max() / np.abs(ref.query_hidden).max() <= 1e-4
    token = seg.lens.context(ref.query_hidden)
    assert np.abs(token - ref.sparse_prompt).max() / np.abs(ref.sparse_prompt).max() <= 1e-5
    res = seg.predict(image, question)
    assert 0.02 < ref.mask.mean() < 0.98  # a mask worth comparing
    assert mask_iou(res.mask, ref.mask) >= 0.999
    assert res.raw_text == ref.text


def test_a_changed_image_encoder_is_reported_not_refused(tmp_path):
    from segzero_edge.export.lens_export.export import _encoder_check
    from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint
    from segzero_edge.reference.builders.lens import build_tiny_lens
    from segzero_edge.reference.lens import read_lens_parts

    ckpt = build_tiny_lens(tmp_path / "c", num_queries=4, stock_sam2=tmp_path / "stock.pt", tune_image_encoder=True)
    info = inspect_checkpoint(ckpt, family="lens")
    parts = read_lens_parts(WeightReader(info.weight_files), info.text.hidden_size)
    report = _encoder_check(parts, tmp_path / "stock.pt")
    assert report["stock"] is False and report["tensors_differing"] > 0 and report["max_abs_diff"] > 0
    assert report["sha256"] != report["stock_sha256"]
    assert _encoder_check(parts, None) == {"sha256": report["sha256"], "stock": None}


def test_cli_exports_and_predicts(lens_checkpoint, tmp_path):
    engine = tmp_path / "engine"
    cmd = [sys.executable, "-m", "segzero_edge", "export", "lens", "--model", str(lens_checkpoint)]
    cmd += ["--out", str(engine), "--input-size", str(INPUT_SIZE), "--weights", "int4", "--validate", "none"]
    cmd += ["--context-weights", "fp32,int4", "--default-context", "int4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lens = load_manifest(engine).component("lens")
    assert lens["context_precisions"] == ["fp32", "int4"] and lens["default_context"] == "int4"
    from PIL import Image

    Image.fromarray(seeded_image(5)).save(tmp_path / "img.png")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "segzero_edge", "predict", str(engine), str(tmp_path / "img.png"), "the cup"]
    cmd += ["--out", str(out), "--max-new-tokens", "8", "--lens-context", "fp32"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "img.segzero.json").read_text())
    assert result["found"] is True and (out / "img.overlay.png").is_file()
    assert "mask_pass" in result["timings_ms"] and "connector" in result["timings_ms"]


def test_a_bad_out_fails_before_any_work(lens_checkpoint, tmp_path):
    from segzero_edge.errors import ExportError
    from segzero_edge.export.lens_export.export import export_lens

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("mine")
    t0 = time.perf_counter()
    with pytest.raises(ExportError, match="not an engine directory"):
        export_lens(lens_checkpoint, tmp_path / "notes")
    assert time.perf_counter() - t0 < 5
    assert (tmp_path / "notes" / "a.txt").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "notes"
    ]
