"""A small Qwen2-style tokenizer, trained offline, for tiny test checkpoints.

Real Qwen2.5-VL checkpoints ship a 151,643-entry byte-level BPE plus 22 added tokens. Tests cannot
download it, so this module trains a small byte-level BPE with the same machinery:

* NFC normalizer, Qwen2's pre-tokenizer split regex (``\\p{N}`` alone: every digit is its own token,
  as in Qwen), ``ByteLevel(add_prefix_space=False, use_regex=False)``, ``ByteLevel`` decoder;
* the 22 Qwen2.5-VL added tokens, in Qwen's order, right after the BPE vocabulary (as in Qwen, where
  they start at id 151643): 14 special ones (``<|endoftext|>`` ... ``<|video_pad|>``) and 8 that Qwen
  marks non-special (``<tool_call>`` ... ``<|file_sep|>``). ``<think>`` and ``<answer>`` are ordinary
  text, as in Qwen2.5.

Training is deterministic: the same arguments give the same ``tokenizer.json`` in every process.
``build_qwen_tokenizer`` needs only ``tokenizers``; ``save_qwen_tokenizer`` writes the HF files with
``transformers`` (imported lazily) so that ``AutoTokenizer.from_pretrained`` gives a ``Qwen2Tokenizer``.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterable
from pathlib import Path

from segzero_edge.errors import InputError
from segzero_edge.prompt import DEFAULT_SYSTEM_PROMPT, seg_zero_user_text

from ..qwen import QWEN25VL_CHAT_TEMPLATE

#: Qwen2's pre-tokenizer split regex (transformers ``tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: Qwen2.5-VL's added tokens marked ``special`` (ids 151643..151656 in the real tokenizer), in order.
QWEN25VL_SPECIAL_TOKENS: tuple[str, ...] = (
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

#: Qwen2.5-VL's added tokens that are *not* special (ids 151657..151664 in the real tokenizer), in order.
QWEN25VL_NONSPECIAL_ADDED_TOKENS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)

#: Every added token, in Qwen's id order.
QWEN25VL_ADDED_TOKENS: tuple[str, ...] = QWEN25VL_SPECIAL_TOKENS + QWEN25VL_NONSPECIAL_ADDED_TOKENS

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
#: Qwen's ``model_max_length`` in tokenizer_config.json.
MODEL_MAX_LENGTH = 131072

#: Default size of the trained BPE vocabulary (256 byte symbols + merges), before the 22 added tokens.
DEFAULT_BPE_VOCAB_SIZE = 1000

# Words of the built-in corpus: objects, colours and positions a robot is asked about.
_OBJECTS = (
    "cup",
    "mug",
    "bottle",
    "bowl",
    "plate",
    "knife",
    "fork",
    "spoon",
    "apple",
    "banana",
    "orange",
    "book",
    "laptop",
    "phone",
    "remote",
    "keyboard",
    "mouse",
    "chair",
    "table",
    "box",
    "bag",
    "shoe",
    "hat",
    "dog",
    "cat",
    "person",
    "man",
    "woman",
    "child",
    "car",
    "bicycle",
    "umbrella",
    "towel",
    "sponge",
    "scissors",
    "screwdriver",
    "hammer",
    "drill",
    "glass",
    "jar",
    "can",
    "lid",
    "toy",
    "block",
    "ball",
    "plant",
    "lamp",
    "pillow",
    "basket",
    "bin",
)
_COLORS = (
    "red",
    "green",
    "blue",
    "yellow",
    "white",
    "black",
    "brown",
    "gray",
    "orange",
    "purple",
    "pink",
    "silver",
    "transparent",
    "dark",
    "light",
)
_POSITIONS = (
    "on the left",
    "on the right",
    "in the middle",
    "at the top",
    "at the bottom",
    "in front",
    "behind the box",
    "next to the cup",
    "on the table",
    "near the edge",
    "in the corner",
    "closest to the camera",
    "farthest from the robot",
    "under the chair",
    "inside the bowl",
)
_SIZES = ("small", "large", "tall", "short", "big", "tiny", "long", "round", "flat", "empty", "full")
_QUESTION_FORMS = (
    "the {color} {obj} {pos}",
    "the {size} {obj}",
    "{obj} {pos}",
    "the {obj} the robot should pick up",
    "which object can be used to hold water",
    "what can the robot use to cut the bread",
    "the thing a person would sit on",
    "the object that is used for typing",
    "the {color} {obj} that is {size}",
    "something to carry the {obj} in",
    "the unusual object in the image",
    "the {obj} that is not {color}",
)
_THINK_FORMS = (
    "The image shows a {color} {obj} {pos}. The question asks for {q}, so the target is the {obj}.",
    "There are several objects: a {obj}, a {obj2} and a {obj3}. Only the {color} {obj} matches the "
    "description, and it is {pos}.",
    "I compare the {obj} and the {obj2}. The {obj} is {size} and {color}, which fits the question best.",
    "The user wants {q}. The {obj2} is {pos2}, but the {obj} {pos} is the most closely matched one.",
    "First I look for a {obj}. There are two of them; the one {pos} is {color}, so I choose it.",
)
_SENTENCE_FORMS = (
    "A {color} {obj} is {pos}.",
    "The robot picks up the {size} {obj} and puts it {pos}.",
    "There is a {obj} next to the {obj2}, and a {color} {obj3} behind them.",
    "Please find the {obj} with bbox and points.",
    "The {obj} is {size}, {color} and {pos}; the {obj2} is {pos2}.",
    "Count the objects: 1 {obj}, 2 {obj2}s and 3 {obj3}s.",
)


def _answer_json(rng: random.Random, *, single_quotes: bool = False) -> str:
    x1, x2 = sorted(rng.sample(range(0, 840), 2))
    y1, y2 = sorted(rng.sample(range(0, 840), 2))
    p1 = [rng.randint(x1, x2), rng.randint(y1, y2)]
    p2 = [rng.randint(x1, x2), rng.randint(y1, y2)]
    sep = "," if rng.random() < 0.5 else ", "

    def arr(v: list[int]) -> str:
        return "[" + sep.join(str(n) for n in v) + "]"

    q = "'" if single_quotes else '"'
    return f"{{{q}bbox{q}: {arr([x1, y1, x2, y2])}, {q}points_1{q}: {arr(p1)}, {q}points_2{q}: {arr(p2)}}}"


@functools.lru_cache(maxsize=1)
def default_corpus() -> tuple[str, ...]:
    """The built-in training text: Seg-Zero prompts, thinks, JSON answers and plain English.

    Deterministic (a fixed-seed ``random.Random``), a few hundred lines.
    """
    rng = random.Random(20250710)

    def fill(form: str) -> str:
        obj, obj2, obj3 = rng.sample(_OBJECTS, 3)
        return form.format(
            obj=obj,
            obj2=obj2,
            obj3=obj3,
            color=rng.choice(_COLORS),
            size=rng.choice(_SIZES),
            pos=rng.choice(_POSITIONS),
            pos2=rng.choice(_POSITIONS),
            q="the " + obj,
        )

    lines: list[str] = ["system\n" + DEFAULT_SYSTEM_PROMPT + "\n", "user\n", "assistant\n"]
    questions = [fill(f) for f in _QUESTION_FORMS for _ in range(4)]
    lines += [seg_zero_user_text(q) for q in questions]
    for i in range(240):
        think = fill(_THINK_FORMS[i % len(_THINK_FORMS)])
        answer = _answer_json(rng, single_quotes=i % 7 == 0)
        lines.append(f"<think>{think}</think><answer>{answer}</answer>")
        lines.append(f"<think> {think} </think>\n<answer>\n{answer}\n</answer>")
    lines += [fill(f) for f in _SENTENCE_FORMS for _ in range(30)]
    lines += [" ".join(words) for words in (_OBJECTS, _COLORS, _POSITIONS, _SIZES)]
    lines.append("0 1 2 3 4 5 6 7 8 9 , . : ; ! ? ' \" ( ) [ ] { } < > / \\ - + = * & % $ # @ _ |")
    return tuple(lines)


@functools.lru_cache(maxsize=8)
def _trained_json(vocab_size: int, corpus: tuple[str, ...] | None) -> str:
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(default_corpus() if corpus is None else corpus, trainer)
    # Added tokens after the BPE vocabulary, in Qwen's order and with Qwen's flags.
    tok.add_tokens(
        [AddedToken(t, special=True, normalized=False) for t in QWEN25VL_SPECIAL_TOKENS]
        + [AddedToken(t, special=False, normalized=False) for t in QWEN25VL_NONSPECIAL_ADDED_TOKENS]
    )
    return tok.to_str()


def build_qwen_tokenizer(vocab_size: int = DEFAULT_BPE_VOCAB_SIZE, corpus: Iterable[str] | None = None):
    """Train a Qwen2-style byte-level BPE tokenizer offline.

    Args:
        vocab_size: upper bound of the BPE vocabulary (256 byte symbols + merges); training stops
            earlier when the corpus has no pair left to merge. The 22 Qwen2.5-VL added tokens come
            after it, so ``get_vocab_size()`` is at most ``vocab_size + 22``.
        corpus: texts to train on instead of the built-in Seg-Zero corpus (``default_corpus()``).

    Returns:
        A new ``tokenizers.Tokenizer`` (the same one for the same arguments; results are cached, each
        call returns its own object).
    """
    from tokenizers import Tokenizer

    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
        raise InputError(
            f"vocab_size must be an int >= 256 (the byte alphabet), got {vocab_size!r}",
            hint=f"use e.g. {DEFAULT_BPE_VOCAB_SIZE}",
        )
    if corpus is not None:
        corpus = tuple(corpus)
        if not corpus or not all(isinstance(t, str) for t in corpus):
            raise InputError("corpus must be a non-empty iterable of str", hint="or pass None for the built-in one")
    return Tokenizer.from_str(_trained_json(vocab_size, corpus))


def qwen_token_ids(tokenizer) -> dict[str, int]:
    """The ids a Qwen2.5-VL config needs, looked up in ``tokenizer`` (``tokenizers`` or transformers)."""
    lookup = tokenizer.token_to_id if hasattr(tokenizer, "token_to_id") else tokenizer.convert_tokens_to_ids
    names = {
        "bos_token_id": PAD_TOKEN,  # Qwen's config uses <|endoftext|> as bos (the tokenizer adds no BOS)
        "eos_token_id": EOS_TOKEN,
        "pad_token_id": PAD_TOKEN,
        "vision_start_token_id": "<|vision_start|>",
        "vision_end_token_id": "<|vision_end|>",
        "vision_token_id": "<|vision_pad|>",
        "image_token_id": "<|image_pad|>",
        "video_token_id": "<|video_pad|>",
    }
    ids = {}
    for key, token in names.items():
        tid = lookup(token)
        if tid is None:
            raise InputError(f"the tokenizer has no {token} token", hint="build it with build_qwen_tokenizer")
        ids[key] = int(tid)
    return ids


def to_transformers_tokenizer(tokenizer):
    """Wrap a ``tokenizers.Tokenizer`` from ``build_qwen_tokenizer`` in transformers' ``Qwen2Tokenizer``.

    Settings as in Qwen2.5-VL's tokenizer_config.json: eos ``<|im_end|>``, pad ``<|endoftext|>``, no BOS,
    no UNK, the 13 special tokens after ``<|endoftext|>`` as extra special tokens, Qwen2.5-VL's chat template.
    """
    from transformers import Qwen2Tokenizer

    model = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    hf = Qwen2Tokenizer(
        tokenizer_object=tokenizer,
        vocab=model["vocab"],
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=list(QWEN25VL_SPECIAL_TOKENS[1:]),
        model_max_length=MODEL_MAX_LENGTH,
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    hf.chat_template = QWEN25VL_CHAT_TEMPLATE
    return hf


def save_qwen_tokenizer(tokenizer, out_dir: str | Path) -> list[Path]:
    """Write ``tokenizer`` as a Hugging Face tokenizer directory (as transformers 5 ``save_pretrained`` does).

    Files: ``tokenizer.json`` (loads with ``tokenizers.Tokenizer.from_file``), ``tokenizer_config.json``
    (``Qwen2Tokenizer``) and ``chat_template.jinja`` (``QWEN25VL_CHAT_TEMPLATE``).

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` from ``build_qwen_tokenizer`` (or a transformers tokenizer,
            saved as it is).
        out_dir: the directory (created if needed).

    Returns:
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf = to_transformers_tokenizer(tokenizer) if hasattr(tokenizer, "to_str") else tokenizer
    written = hf.save_pretrained(str(out_dir))
    return [Path(p) for p in written if Path(p).exists()]
