"""A small Qwen-like byte-level BPE tokenizer for the constraint tests, trained offline.

Same machinery as Qwen2: NFC, Qwen2's pre-tokenizer regex (``\\p{N}`` alone, so every digit is its own
token), byte-level alphabet, ByteLevel decoder, Qwen's special tokens. Trained on Seg-Zero-like text
(thinks, answers in several spellings, a few non-ASCII words so partial-UTF-8 tokens exist).

The team's shared builder (``segzero_edge.export.builders.tokenizer.build_qwen_tokenizer``) replaces
this once it is merged: the ``qwen_tokenizer`` fixture in ``conftest.py`` prefers it when importable.
"""

from __future__ import annotations

import random

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
_WORDS = [
    "the",
    "cup",
    "on",
    "the",
    "table",
    "is",
    "red",
    "and",
    "the",
    "robot",
    "should",
    "pick",
    "up",
    "the",
    "one",
    "closest",
    "to",
    "the",
    "gripper",
    "handle",
    "object",
    "left",
    "right",
    "top",
    "bottom",
    "of",
    "image",
    "located",
    "near",
    "large",
    "small",
    "white",
    "black",
    "dog",
    "person",
    "chair",
    "bounding",
    "box",
    "points",
    "inscribed",
    "circle",
    "region",
    "mask",
    "segment",
    "target",
    "unusual",
]
_NON_ASCII = ("café", "naïve", "日本", "东西", "größe", "Ελλάδα", "🙂", "—")


def answer_json(rng: random.Random) -> str:
    """A Seg-Zero answer in one of the spellings models produce."""

    def arr(values: list[int]) -> str:
        sep = rng.choice([", ", ","])
        return "[" + sep.join(str(v) for v in values) + "]"

    x1, y1 = rng.randrange(0, 700), rng.randrange(0, 700)
    box = [x1, y1, rng.randrange(x1, 841), rng.randrange(y1, 841)]
    p1 = [rng.randrange(0, 841), rng.randrange(0, 841)]
    p2 = [rng.randrange(0, 841), rng.randrange(0, 841)]
    q = rng.choice(['"', '"', "'"])
    return f"{{{q}bbox{q}: {arr(box)}, {q}points_1{q}: {arr(p1)}, {q}points_2{q}: {arr(p2)}}}"


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(_WORDS) for _ in range(rng.randrange(5, 40))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), rng.choice(_NON_ASCII))
        think = " ".join(words) + "."
        sep = rng.choice(["", "\n", " "])
        out.append(f"<think>{think}</think>{sep}<answer>{answer_json(rng)}</answer>")
    return out


def build_test_tokenizer(vocab_size: int = 700, texts: list[str] | None = None) -> Tokenizer:
    """Train the tokenizer (deterministic for the same arguments)."""
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts if texts is not None else corpus(), trainer)
    bpe.add_special_tokens(list(QWEN_SPECIAL_TOKENS))
    return bpe
