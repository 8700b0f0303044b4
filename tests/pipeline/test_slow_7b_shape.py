"""The checkpoint users download, shaped: Seg-Zero-7B's language model (152,064-row embeddings and untied LM
head, hidden 3584, GQA 28/4, bfloat16 safetensors) with one decoder layer, one vision block and a 112x112
input; exported INT4 with full validation into an engine that has SAM2, then ``predict``.

The tokenizer (the tiny offline BPE with Qwen's special tokens) has far fewer tokens than the 152,064 rows of
the embedding table and LM head, as Qwen's own (151,665 tokens) has fewer than its table: the rows past it are
padding, and random weights make one of them the argmax nearly everywhere. The answer constraint must never
allow them, or the constrained answer would not decode."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sam2")

VOCAB = 152064


@pytest.mark.slow
def test_7b_shaped_export_with_full_validation_then_predict(tmp_path, full_engine_dir, scene):
    from segzero_edge import Segmenter
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner
    from segzero_edge.manifest import load_manifest
    from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline
    from segzero_edge.reasoner import contract as reasoner_contract
    from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl

    ckpt = build_tiny_qwen25vl(tmp_path / "ckpt", "7b", num_layers=1, vision_depth=1, input_size=112, dtype="bfloat16")
    engine = tmp_path / "engine"
    shutil.copytree(full_engine_dir, engine)  # its SAM2 stays; the reasoner is replaced
    cfg = ReasonerExportConfig(weights="int4", validate="full", validation_tokens=12, threads=2)
    export_reasoner(ckpt, engine, cfg)
    m = load_manifest(engine, verify="full")
    v = m.validation["reasoner"]
    assert v["pairs"] == 5 and v["method"] == "teacher_forced"
    assert v["greedy_identical_to_dequantized_torch"] == v["constrained_identical_to_dequantized_torch"] == 5
    assert v["prompt_ids_identical"] == 5 and v["pixel_values_max_abs_diff"] == 0
    assert 0 < v["top1_agreement_vs_fp32"] <= 1 and v["logits_rel_rms_err"] > 0
    assert set(v["phase_seconds"]) == {"onnxruntime", "transformers_fp32", "dequantized_torch"}
    s = m.component("reasoner")
    assert s["text"]["vocab_size"] == VOCAB and not s["text"]["tie_word_embeddings"]
    assert s["embeddings"]["shape"] == [VOCAB, 3584]
    assert m.graph(reasoner_contract.DECODER).quantization["lm_head"] == "int8"

    reasoner = ReasonerPipeline(engine, device="cpu", threads=2)
    tokenizer_size = reasoner.tokenizer.tokenizer.get_vocab_size(with_added_tokens=True)
    assert tokenizer_size < VOCAB - 1000  # the padding rows this test is about
    free = reasoner.generate(*scene, GenerationOptions(max_new_tokens=8, constrained=False, stop_at_answer=False))
    assert max(free.token_ids) >= tokenizer_size  # unconstrained, random weights pick padding rows

    rgb, text = scene
    with Segmenter(engine, device="cpu", max_new_tokens=60, threads=2) as seg:
        res = seg.predict(rgb, text)
    assert res.found, res.error
    assert res.answer.ok and "</answer>" in res.raw_text
    assert res.mask.shape == rgb.shape[:2] and res.mask.dtype == bool
    x1, y1, x2, y2 = res.box
    assert 0 <= x1 <= x2 <= rgb.shape[1] and 0 <= y1 <= y2 <= rgb.shape[0]
    assert res.generation.generated_tokens > 0
    answer = reasoner.generate(*scene, GenerationOptions(max_new_tokens=60, constrained=True))
    assert answer.stop_reason == "answer" and max(answer.token_ids) < tokenizer_size
    assert np.isfinite(res.score)
