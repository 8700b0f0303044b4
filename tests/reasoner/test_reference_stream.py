"""The validation's streamed, teacher-forced transformers reference against transformers' whole model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from segzero_edge.export.reasoner_export.checkpoint import WeightReader, inspect_checkpoint
from segzero_edge.export.reasoner_export.engine_run import constraint_steps, greedy_picks, run_engine
from segzero_edge.export.reasoner_export.reference_stream import (
    CheckpointWeights,
    EngineWeights,
    PackedPair,
    StreamedReference,
    reference_memory_bytes,
)
from segzero_edge.export.reasoner_export.validate import validation_samples
from segzero_edge.reasoner import GenerationOptions, ReasonerPipeline, contract
from segzero_edge.reference.torch_reasoner import TorchReasoner, processor_inputs

PAIRS = validation_samples(2)
GREEDY = GenerationOptions(max_new_tokens=12, constrained=False, stop_at_answer=False)


def _pairs(ref: TorchReasoner, generations: list[list[list[int]]]) -> list[PackedPair]:
    out = []
    for (image, question), gens in zip(PAIRS, generations):
        inputs = processor_inputs(ref.processor, image, question, input_size=ref.input_size, family=ref.family)
        out.append(PackedPair.from_processor(inputs, gens))
    return out


@pytest.fixture(scope="module")
def torch_ref(tiny_qwen_dir, tiny_model):
    return TorchReasoner(tiny_qwen_dir, model=tiny_model)


def test_streamed_packed_logits_equal_the_whole_model(tiny_qwen_dir, torch_ref):
    """Two generations of different lengths packed with one prompt, layer by layer: each generation's logits
    equal transformers' whole-model forward over the prompt and that generation alone."""
    rng = np.random.default_rng(0)
    vocab = torch_ref.tokenizer.vocab_size
    generations = []
    for image, question in PAIRS:
        greedy = list(torch_ref.generate(image, question, GREEDY).token_ids)
        generations.append([greedy, [int(t) for t in rng.integers(0, vocab, 7)]])
    ckpt = inspect_checkpoint(tiny_qwen_dir)
    reader = WeightReader(ckpt.weight_files)
    stream = StreamedReference(ckpt.config, device="cpu")
    pairs = _pairs(torch_ref, generations)
    vision = stream.vision(reader, [(p.pixel_values, p.image_grid_thw) for p in pairs])
    logits, extra = stream.logits(pairs, vision, CheckpointWeights(reader, ckpt.text.tie_word_embeddings))
    assert extra == []
    for (image, question), gens, ours in zip(PAIRS, generations, logits):
        assert len(ours) == 2
        for gen, rows in zip(gens, ours):
            want = torch_ref.teacher_forced_logits(image, question, gen)
            assert rows.shape == want.shape == (len(gen), torch_ref.model.config.text_config.vocab_size)
            np.testing.assert_allclose(rows, want, atol=2e-4, rtol=0)
        assert list(np.argmax(ours[0], -1)) == gens[0]  # the greedy generation picks itself


def test_engine_weights_stream_the_dequantized_decoder(tiny_qwen_dir, engine_int4, torch_ref):
    """EngineWeights hands out every linear layer of the INT4 graph in order and the LM head; the streamed
    model with them picks the engine's own greedy tokens (the export's accuracy_level 0: weight-only)."""
    from segzero_edge.manifest import load_manifest

    ckpt = inspect_checkpoint(tiny_qwen_dir)
    reader = WeightReader(ckpt.weight_files)
    manifest = load_manifest(engine_int4)
    engine = ReasonerPipeline(engine_int4, device="cpu", threads=1)
    gens = [[list(engine.generate(image, q, GREEDY).token_ids)] for image, q in PAIRS]
    stream = StreamedReference(ckpt.config, device="cpu")
    pairs = _pairs(torch_ref, gens)
    vision = stream.vision(reader, [(p.pixel_values, p.image_grid_thw) for p in pairs])
    source = EngineWeights(reader, engine_int4, manifest)
    logits, _ = stream.logits(pairs, vision, source)
    assert source.replaced == 7 * ckpt.text.num_layers + 1
    for pair_gens, rows in zip(gens, logits):
        assert list(greedy_picks(rows[0], None)) == pair_gens[0]


def test_engine_run_keeps_the_greedy_generations_logits_as_teacher_forced_rows(engine_int4):
    """The engine's logits recorded during its greedy generation are the rows a teacher-forced rerun of the
    same tokens computes (row j predicts token j), so the validation need not rerun the decoder."""
    from segzero_edge.manifest import load_manifest

    opts = GenerationOptions(max_new_tokens=10, constrained=False, stop_at_answer=False)
    run = run_engine(load_manifest(engine_int4), engine_int4, PAIRS, opts, None, threads=1)
    engine = ReasonerPipeline(engine_int4, device="cpu", threads=1)
    for (image, question), gens, rows in zip(PAIRS, run.generations, run.logits):
        assert rows.shape == (len(gens[0]), engine.settings.text.vocab_size) and len(gens[0]) > 1
        np.testing.assert_allclose(rows, engine.teacher_forced_logits(image, question, gens[0]), atol=1e-5, rtol=0)


def test_greedy_picks_follow_the_constraint_and_never_pick_padding_rows(engine_int4):
    """Constraint steps along a constrained generation: forced positions are skipped, free ones pick within
    the allowed set, and the embedding table's rows past the tokenizer (padding) are never allowed."""
    engine = ReasonerPipeline(engine_int4, device="cpu", threads=1)
    opts = GenerationOptions(max_new_tokens=120, constrained=True, thinking_budget=6)
    image, question = PAIRS[0]
    tokens = list(engine.generate(image, question, opts).token_ids)
    steps = constraint_steps(engine.make_constraint(opts), tokens)
    assert len(steps) == len(tokens) and any(s is None for s in steps) and any(s for s in steps)
    vocab = engine.settings.text.vocab_size
    tokenizer_size = engine.tokenizer.tokenizer.get_vocab_size(with_added_tokens=True)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(len(tokens), vocab)).astype(np.float32)
    if vocab > tokenizer_size:  # make padding rows the largest: they must still lose
        logits[:, tokenizer_size:] = 1e9
    picks = greedy_picks(logits, steps)
    for j, step in enumerate(steps):
        if step is None:
            assert picks[j] == -1
        elif step:
            allowed = np.unpackbits(np.frombuffer(step, np.uint8), count=vocab).astype(bool)
            assert allowed[picks[j]] and not allowed[tokenizer_size:].any()
            assert logits[j, picks[j]] == logits[j, allowed].max()
    free = picks >= 0
    # the engine's own tokens are allowed wherever the constraint left a choice
    for j in np.flatnonzero(free):
        allowed = np.unpackbits(np.frombuffer(steps[j], np.uint8), count=vocab).astype(bool) if steps[j] else None
        assert allowed is None or allowed[tokens[j]]


def test_weight_reader_rows_and_memory_estimate(tiny_qwen_dir):
    ckpt = inspect_checkpoint(tiny_qwen_dir)
    reader = WeightReader(ckpt.weight_files)
    table = reader.get("lm.embed_tokens.weight")
    ids = np.array([5, 0, table.shape[0] - 1, 5])
    np.testing.assert_array_equal(reader.rows("lm.embed_tokens.weight", ids), table[ids])
    assert reader.shape("lm.embed_tokens.weight") == table.shape
    with pytest.raises(IndexError):
        reader.rows("lm.embed_tokens.weight", np.array([table.shape[0]]))
    est = reference_memory_bytes(reader, ckpt.config, tokens=10, num_patches=64)
    layer = sum(reader.get(n).size for n in reader.names() if n.startswith("lm.layers.0."))
    vision = sum(reader.get(n).size for n in reader.names() if n.startswith("visual."))
    assert 4 * max(layer, vision) < est < 4 * (layer + vision + 2 * table.size + 16384 * table.shape[1])
    # the vision tower's attention over 3,600 patches (an 840x840 input) dominates a tiny model's estimate
    heads = ckpt.config.vision_config.num_heads
    big = reference_memory_bytes(reader, ckpt.config, tokens=10, num_patches=3600)
    assert big > max(est, 4 * 2 * heads * 3600**2)


def test_int8_activation_export_validates_on_its_fp32_activation_twin(tmp_path, tiny_qwen_dir):
    """accuracy_level 4 (int8 activations) with layer 0 INT8: the twin graph has no accuracy_level, no 8-bit
    MatMulNBits and no LM head, returns hidden states, and the validation's weight-only identity holds on it."""
    import onnx

    from segzero_edge.export.reasoner_export.dequantized import fp32_activation_twin
    from segzero_edge.export.reasoner_export.onnx_export import ReasonerExportConfig, export_reasoner

    cfg = ReasonerExportConfig(weights="int4", block_size=32, int8_layers=(0,), validate="quick", threads=1)
    m = export_reasoner(tiny_qwen_dir, tmp_path / "engine", cfg)
    v = m.validation["reasoner"]
    assert v["twin_fp32_activations"] is True
    assert v["greedy_identical_to_dequantized_torch"] == v["constrained_identical_to_dequantized_torch"] == 2
    assert 0 <= v["accuracy_level_greedy_identical_to_dequantized_torch"] <= 2
    with fp32_activation_twin(tmp_path / "engine", m.graph(contract.DECODER).file) as twin:
        graph = onnx.load(str(twin), load_external_data=False).graph
        outputs = {o.name for o in graph.output}
        assert contract.HIDDEN_STATES in outputs and contract.LOGITS not in outputs
        nbits = [n for n in graph.node if n.op_type == "MatMulNBits"]
        assert nbits and not any(n.name.startswith(("lm_head", "layers.0.")) for n in nbits)
        for node in nbits:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["bits"] == 4 and "accuracy_level" not in attrs
    assert not list((tmp_path / "engine" / "reasoner").glob(".validation-twin-*"))


@pytest.mark.gpu
def test_streamed_reference_on_cuda_matches_cpu(tiny_qwen_dir, torch_ref):
    """With CUDA torch the validation's reference runs on the GPU (``reference_device="auto"``) and gives
    the CPU's logits."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA torch and a GPU")
    ckpt = inspect_checkpoint(tiny_qwen_dir)
    reader = WeightReader(ckpt.weight_files)
    gens = [[list(torch_ref.generate(image, q, GREEDY).token_ids)] for image, q in PAIRS]
    pairs = _pairs(torch_ref, gens)
    out = {}
    for device in ("cpu", "auto"):
        stream = StreamedReference(ckpt.config, device=device)
        vision = stream.vision(reader, [(p.pixel_values, p.image_grid_thw) for p in pairs])
        out[str(stream.device)] = stream.logits(
            pairs, vision, CheckpointWeights(reader, ckpt.text.tie_word_embeddings)
        )[0]
    assert set(out) == {"cpu", "cuda"}
    for a, b in zip(out["cpu"], out["cuda"]):
        np.testing.assert_allclose(a[0], b[0], atol=1e-3, rtol=0)
