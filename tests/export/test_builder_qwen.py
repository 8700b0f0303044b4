"""Random Qwen2.5-VL checkpoints: loadable by transformers like real ones, deterministic, with a
Qwen-like offline tokenizer."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from segzero_edge.errors import CheckpointError, InputError
from segzero_edge.prompt import num_image_tokens, read_checkpoint_meta, render_chat, seg_zero_messages
from segzero_edge.reference.qwen import QWEN25VL_CHAT_TEMPLATE

pytest.importorskip("tokenizers")

from segzero_edge.reference.builders.qwen import (
    QWEN_SIZES,
    QwenSize,
    _resolve_size,
    build_tiny_qwen25vl,
)
from segzero_edge.reference.builders.tokenizer import (
    QWEN25VL_ADDED_TOKENS,
    QWEN25VL_NONSPECIAL_ADDED_TOKENS,
    QWEN25VL_SPECIAL_TOKENS,
    build_qwen_tokenizer,
)

QUESTIONS = [
    "the cup the robot should pick up",
    "The unusal object in the image.",
    "what can hold 2 liters of water? (the 'big' one)",
    "Café – naïve 漢字",
]
TEXTS = [
    '<think>The red cup is on the left.</think><answer>{"bbox": [12,340,56,78], "points_1": [30,110], '
    '"points_2": [35,180]}</answer>',
    "x1=0, y1=839; 3.14159 and 1000000",
    "Café ☕ naïve 漢字 — emoji 🤖\n\ttabs  and  spaces ",
    render_chat("the cup the robot should pick up"),
]
#: tests that build or load models need the ``export`` extra; the tokenizer tests need only ``tokenizers``
needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None,
    reason="needs torch and transformers (pip install 'segzero-edge[export]')",
)
FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "segzero_edge.json",
}


def _raw_tokenizer(checkpoint):
    """The checkpoint's tokenizer.json loaded with plain ``tokenizers``, as the torch-free runtime does."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(checkpoint / "tokenizer.json"))


def _hashes(path):
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


# ---------------------------------------------------------------- tokenizer (tokenizers only, no torch)


def test_digits_are_one_token_each():
    tok = build_qwen_tokenizer()
    enc = tok.encode('{"bbox": [12,340,56,78], "points_1": [2025,7]} 0123456789')
    digit_tokens = [t for t in enc.tokens if any(c.isdigit() for c in t)]
    assert "".join(digit_tokens) == "123405678" + "1" + "20257" + "0123456789"  # "1" of points_1
    assert all(len(t) == 1 for t in digit_tokens)
    # and no token of the vocabulary glues a digit to anything
    vocab = tok.get_vocab(with_added_tokens=False)
    assert all(len(t) == 1 for t in vocab if any(c.isdigit() for c in t))


def test_added_tokens_follow_the_bpe_vocabulary_in_qwen_order():
    tok = build_qwen_tokenizer()
    added = tok.get_added_tokens_decoder()
    n_bpe = tok.get_vocab_size(with_added_tokens=False)
    assert tok.get_vocab_size() == n_bpe + len(QWEN25VL_ADDED_TOKENS) == n_bpe + 22
    assert [added[i].content for i in sorted(added)] == list(QWEN25VL_ADDED_TOKENS)
    assert sorted(added) == list(range(n_bpe, n_bpe + 22))
    assert {added[i].content for i in added if added[i].special} == set(QWEN25VL_SPECIAL_TOKENS)
    assert {added[i].content for i in added if not added[i].special} == set(QWEN25VL_NONSPECIAL_ADDED_TOKENS)
    # <think>/<answer> are ordinary text in Qwen2.5, split by the BPE
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert tok.token_to_id(tag) is None or tok.token_to_id(tag) < n_bpe
    assert 256 < n_bpe <= 1000


@pytest.mark.parametrize("text", TEXTS)
def test_encode_decode_round_trip(text):
    tok = build_qwen_tokenizer()
    ids = tok.encode(text).ids
    assert tok.decode(ids, skip_special_tokens=False) == unicodedata.normalize("NFC", text)


def test_special_tokens_are_single_ids_and_skippable():
    tok = build_qwen_tokenizer()
    ids = tok.encode("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>").ids
    for t in ("<|im_start|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|im_end|>"):
        assert ids.count(tok.token_to_id(t)) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "user\nhi"


def test_tokenizer_is_the_same_in_every_process():
    tok = build_qwen_tokenizer()
    code = (
        "import hashlib; from segzero_edge.reference.builders.tokenizer import build_qwen_tokenizer; "
        "print(hashlib.sha256(build_qwen_tokenizer().to_str().encode()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == hashlib.sha256(tok.to_str().encode()).hexdigest()
    assert tok.to_str() == build_qwen_tokenizer().to_str()


def test_custom_corpus_and_bad_arguments():
    small = build_qwen_tokenizer(vocab_size=300, corpus=["hello world, hello robot"] * 5)
    assert small.get_vocab_size(with_added_tokens=False) <= 300
    assert small.decode(small.encode("hello 42").ids) == "hello 42"
    with pytest.raises(InputError, match="vocab_size"):
        build_qwen_tokenizer(vocab_size=100)
    with pytest.raises(InputError, match="corpus"):
        build_qwen_tokenizer(corpus=[])


# ---------------------------------------------------------------- the checkpoint directory


@needs_torch
def test_checkpoint_has_the_files_and_ids_of_a_real_one(tiny_qwen_dir):
    assert {f.name for f in tiny_qwen_dir.iterdir()} == FILES
    tok = _raw_tokenizer(tiny_qwen_dir)
    tid = tok.token_to_id
    cfg = json.loads((tiny_qwen_dir / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_vl"
    assert cfg["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert (cfg["image_token_id"], cfg["video_token_id"]) == (tid("<|image_pad|>"), tid("<|video_pad|>"))
    assert (cfg["vision_start_token_id"], cfg["vision_end_token_id"]) == (
        tid("<|vision_start|>"),
        tid("<|vision_end|>"),
    )
    text = cfg["text_config"]
    assert (text["eos_token_id"], text["pad_token_id"], text["bos_token_id"]) == (
        tid("<|im_end|>"),
        tid("<|endoftext|>"),
        tid("<|endoftext|>"),
    )
    assert text["vocab_size"] == tok.get_vocab_size()
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    assert text["rope_parameters"]["mrope_section"] == [2, 3, 3] and head_dim == 16
    gen = json.loads((tiny_qwen_dir / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [tid("<|im_end|>"), tid("<|endoftext|>")]
    assert gen["pad_token_id"] == gen["bos_token_id"] == tid("<|endoftext|>")
    pre = json.loads((tiny_qwen_dir / "preprocessor_config.json").read_text())
    assert pre == {
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }
    assert read_checkpoint_meta(tiny_qwen_dir)["input_size"] == 112
    assert (tiny_qwen_dir / "chat_template.jinja").read_text() == QWEN25VL_CHAT_TEMPLATE
    from safetensors import safe_open

    with safe_open(str(tiny_qwen_dir / "model.safetensors"), "pt") as f:  # the official key layout
        keys = set(f.keys())
    assert {
        "lm_head.weight",
        "model.embed_tokens.weight",
        "visual.patch_embed.proj.weight",
        "visual.merger.mlp.2.weight",
        "model.layers.1.self_attn.q_proj.bias",
    } <= keys


@needs_torch
def test_transformers_tokenizer_matches_plain_tokenizers(tiny_qwen_dir):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    raw = _raw_tokenizer(tiny_qwen_dir)
    assert type(hf).__name__ == "Qwen2Tokenizer"
    assert (hf.eos_token, hf.pad_token, hf.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    assert hf.chat_template == QWEN25VL_CHAT_TEMPLATE
    assert len(hf) == raw.get_vocab_size()
    assert {i: t.content for i, t in hf.added_tokens_decoder.items()} == {
        i: t.content for i, t in raw.get_added_tokens_decoder().items()
    }
    for i, t in raw.get_added_tokens_decoder().items():
        assert hf.added_tokens_decoder[i].special == t.special
    for text in TEXTS:
        ids = hf(text)["input_ids"]
        assert ids == raw.encode(text).ids  # no BOS, no post-processing
        assert hf.decode(ids) == raw.decode(ids, skip_special_tokens=False)
    assert raw.encode(render_chat("a cup")).ids == build_qwen_tokenizer().encode(render_chat("a cup")).ids


@needs_torch
@pytest.mark.parametrize("question", QUESTIONS)
def test_chat_template_renders_like_render_chat(tiny_qwen_dir, question):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(tiny_qwen_dir))
    rendered = hf.apply_chat_template(seg_zero_messages(question), add_generation_prompt=True, tokenize=False)
    assert rendered == render_chat(question)


@needs_torch
def test_generate_from_pretrained_is_deterministic(tiny_qwen_dir):
    import torch
    from PIL import Image

    from segzero_edge.reference.qwen import load_qwen_model, load_qwen_processor

    processor = load_qwen_processor(tiny_qwen_dir)
    model = load_qwen_model(tiny_qwen_dir)
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    size = read_checkpoint_meta(tiny_qwen_dir)["input_size"]
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    text = processor.apply_chat_template(seg_zero_messages("the red cup"), add_generation_prompt=True, tokenize=False)
    assert text == render_chat("the red cup")
    inputs = processor(images=[image], text=[text], return_tensors="pt")
    assert inputs["image_grid_thw"].tolist() == [[1, size // 14, size // 14]]
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == num_image_tokens(size) == 16
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        with torch.no_grad():
            runs.append(model.generate(**inputs, max_new_tokens=8, do_sample=False))
    assert torch.equal(runs[0], runs[1])
    new = runs[0][0, inputs["input_ids"].shape[1] :]
    assert 1 <= len(new) <= 8 and all(0 <= t < model.config.text_config.vocab_size for t in new.tolist())
    processor.decode(new)  # decodes without error


@needs_torch
def test_processor_pickles_and_saves_without_a_video_processor(tiny_qwen_dir, tmp_path):
    import pickle

    from segzero_edge.reference.qwen import load_qwen_processor

    processor = load_qwen_processor(tiny_qwen_dir)
    clone = pickle.loads(pickle.dumps(processor))
    assert type(clone) is type(processor)
    processor.save_pretrained(tmp_path / "proc")
    again = load_qwen_processor(tmp_path / "proc")
    text = '<think>a cup</think><answer>{"bbox": [1,2,3,4]}</answer>'
    assert again(text=[text])["input_ids"] == processor(text=[text])["input_ids"]
    assert again.chat_template == processor.chat_template


@needs_torch
def test_loaders_refuse_what_is_not_a_qwen_checkpoint(tmp_path, tiny_qwen_dir):
    from segzero_edge.reference.qwen import load_qwen_model, load_qwen_processor

    with pytest.raises(CheckpointError, match="not a directory"):
        load_qwen_model(tmp_path / "missing")
    with pytest.raises(CheckpointError, match=r"tokenizer_config\.json"):
        load_qwen_processor(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="'llama'"):
        load_qwen_model(tmp_path)
    with pytest.raises(InputError, match="dtype"):
        load_qwen_model(tiny_qwen_dir, dtype="int3")


def test_hf_loading_imports_no_torch():
    code = "import sys, segzero_edge.reference.qwen; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- builder options and errors


@needs_torch
def test_same_seed_same_bytes_other_seed_other_weights(tmp_path, tiny_qwen_dir):
    a = build_tiny_qwen25vl(tmp_path / "a", seed=0)
    assert _hashes(a) == _hashes(tiny_qwen_dir)  # also equal to the session fixture, built earlier
    b = build_tiny_qwen25vl(tmp_path / "b", seed=1)
    diff = {k for k, v in _hashes(a).items() if _hashes(b)[k] != v}
    assert diff == {"model.safetensors"}


@needs_torch
def test_overrides_reach_the_config(tmp_path):
    from transformers import AutoConfig

    path = build_tiny_qwen25vl(tmp_path / "c", num_layers=1, vision_depth=3, input_size=56, dtype="bfloat16")
    cfg = AutoConfig.from_pretrained(str(path))
    assert cfg.text_config.num_hidden_layers == 1 and cfg.vision_config.depth == 3
    assert list(cfg.vision_config.fullatt_block_indexes) == [1]
    assert read_checkpoint_meta(path)["input_size"] == 56
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize(("depth", "fullatt"), [(1, (0,)), (4, (3,)), (8, (7,)), (16, (7, 15)), (32, (7, 15, 23, 31))])
def test_reduced_vision_depth_keeps_real_full_attention_blocks(depth, fullatt):
    assert _resolve_size("3b", None, depth).fullatt_block_indexes == fullatt


@needs_torch
def test_real_size_configs():
    from segzero_edge.reference.builders.qwen import qwen_config
    from segzero_edge.reference.builders.tokenizer import qwen_token_ids

    ids = qwen_token_ids(build_qwen_tokenizer())
    for name, vocab, hidden, ffn, layers, heads, kv, tied in [
        ("3b", 151936, 2048, 11008, 36, 16, 2, True),
        ("7b", 152064, 3584, 18944, 28, 28, 4, False),
    ]:
        spec = QWEN_SIZES[name]
        cfg = qwen_config(spec, ids, spec.vocab_size)
        t, v = cfg.text_config, cfg.vision_config
        assert (t.vocab_size, t.hidden_size, t.intermediate_size) == (vocab, hidden, ffn)
        assert t.num_hidden_layers == layers
        assert (t.num_attention_heads, t.num_key_value_heads, cfg.tie_word_embeddings) == (heads, kv, tied)
        assert t.rope_parameters["mrope_section"] == [16, 24, 24] and t.rope_parameters["rope_theta"] == 1e6
        assert t.rms_norm_eps == 1e-6 and spec.head_dim == 128
        assert (v.depth, v.hidden_size, v.intermediate_size, v.num_heads, v.out_hidden_size) == (
            32,
            1280,
            3420,
            16,
            hidden,
        )
        assert (v.window_size, list(v.fullatt_block_indexes)) == (112, [7, 15, 23, 31])
        assert spec.input_size == 840


@needs_torch
def test_3b_shaped_checkpoint_builds_and_loads(tmp_path):
    import torch

    from segzero_edge.reference.qwen import load_qwen_model

    path = build_tiny_qwen25vl(tmp_path / "3b", "3b", num_layers=1, vision_depth=1, input_size=56, dtype="bfloat16")
    model = load_qwen_model(path, dtype="auto")
    assert model.dtype == torch.bfloat16
    assert model.config.text_config.vocab_size == 151936 and model.config.text_config.num_hidden_layers == 1
    assert model.lm_head.weight.shape == (151936, 2048)
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied, like 3B
    tok = _raw_tokenizer(path)
    ids = torch.tensor([tok.encode("a red cup").ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], 151936) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": "13b"}, "unknown Qwen2.5-VL size '13b'"),
        ({"input_size": 100}, "multiple of 28"),
        ({"input_size": 28}, "pixel range"),
        ({"num_layers": 0}, "num_layers"),
        ({"vision_depth": 1.5}, "vision_depth"),
        ({"dtype": "int8"}, "dtype"),
    ],
)
def test_bad_arguments_are_refused_before_writing(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        build_tiny_qwen25vl(tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


@needs_torch
def test_non_empty_out_dir_needs_overwrite(tmp_path):
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty") as exc:
        build_tiny_qwen25vl(out)
    assert "overwrite" in exc.value.hint
    assert [f.name for f in out.iterdir()] == ["notes.txt"]
    with pytest.raises(InputError, match="not a checkpoint directory"):  # --overwrite replaces checkpoints only
        build_tiny_qwen25vl(out, overwrite=True)
    assert [f.name for f in out.iterdir()] == ["notes.txt"]
    (out / "config.json").write_text("{}")  # an (old) checkpoint: replaced
    build_tiny_qwen25vl(out, overwrite=True)
    assert {f.name for f in out.iterdir()} == FILES
    assert sorted(f.name for f in tmp_path.iterdir()) == ["ckpt"]  # no temporary directory left behind
    empty = tmp_path / "empty"
    empty.mkdir()
    assert {f.name for f in build_tiny_qwen25vl(empty).iterdir()} == FILES


def test_qwen_size_checks_its_shapes():
    with pytest.raises(InputError, match="mrope_section"):
        QwenSize(
            name="bad",
            hidden_size=64,
            intermediate_size=128,
            num_layers=1,
            num_heads=4,
            num_kv_heads=2,
            mrope_section=(4, 6, 6),
            vocab_size=None,
            tie_word_embeddings=False,
        )


@needs_torch
def test_cli_writes_a_checkpoint(tmp_path, capsys):
    from segzero_edge.cli import main

    out = tmp_path / "cli"
    assert main(["export", "tiny-reasoner", "--out", str(out), "--seed", "3", "--input-size", "84"]) == 0
    assert {f.name for f in out.iterdir()} == FILES and read_checkpoint_meta(out)["input_size"] == 84
    assert "wrote" in capsys.readouterr().out
    assert main(["export", "tiny-reasoner", "--out", str(out)]) != 0  # not empty, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "tiny-reasoner", "--help"])
    assert "--num-layers" in capsys.readouterr().out
