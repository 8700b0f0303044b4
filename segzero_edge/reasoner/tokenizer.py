"""Tokenization of the Seg-Zero prompt with the ``tokenizers`` library (no transformers).

The prompt text comes from the prompt contract (``segzero_edge.prompt.render_chat``); it holds one
``<|image_pad|>`` (an added, atomic token), which is expanded here to one pad per image embedding. The
ids equal what ``transformers``' Qwen2.5-VL processor produces for the same image and question (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from ..errors import InputError, ManifestError
from ..prompt import DEFAULT_SYSTEM_PROMPT, render_chat


class TextStream:
    """Incremental detokenizer: ``step(token_id)`` returns the new text (possibly ``""``).

    Multi-byte characters split across tokens are held back until complete, so the concatenation of the
    steps is the decoded text.
    """

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        from tokenizers.decoders import DecodeStream

        self._tok = tokenizer
        self._stream = DecodeStream(skip_special_tokens=skip_special_tokens)

    def step(self, token_id: int) -> str:
        out = self._stream.step(self._tok, int(token_id))
        return out or ""


class PromptTokenizer:
    """The reasoner's tokenizer.

    Args:
        tokenizer_file: ``tokenizer.json`` (Hugging Face ``tokenizers`` format).
        image_pad_id: id of ``<|image_pad|>``.
    """

    def __init__(self, tokenizer_file: str | Path, image_pad_id: int):
        from tokenizers import Tokenizer

        path = Path(tokenizer_file)
        if not path.is_file():
            raise ManifestError(
                f"tokenizer file {path} is missing", hint="re-export the reasoner; the engine directory is incomplete"
            )
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception on malformed files
            raise ManifestError(f"cannot read tokenizer {path}: {exc}") from exc
        self.image_pad_id = int(image_pad_id)
        if self._tok.id_to_token(self.image_pad_id) != "<|image_pad|>":
            raise ManifestError(
                f"{path}: token {self.image_pad_id} is not <|image_pad|>",
                hint="the tokenizer does not belong to this engine; re-export it",
            )

    @property
    def tokenizer(self):
        """The underlying ``tokenizers.Tokenizer``."""
        return self._tok

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def encode_text(self, text: str) -> list[int]:
        """Plain encoding of ``text`` (special tokens written in it are recognised)."""
        return list(self._tok.encode(text, add_special_tokens=True).ids)

    def encode_prompt(
        self, question: str, num_image_tokens: int, *, system_prompt: str = DEFAULT_SYSTEM_PROMPT
    ) -> np.ndarray:
        """``(seq,)`` int64 ids of the full Seg-Zero prompt with ``num_image_tokens`` image pads."""
        ids = np.asarray(self.encode_text(render_chat(question, system_prompt=system_prompt)), dtype=np.int64)
        where = np.flatnonzero(ids == self.image_pad_id)
        if where.size != 1:
            raise InputError(
                f"the rendered prompt has {where.size} image pads instead of 1",
                hint="the question must not contain <|image_pad|>",
            )
        i = int(where[0])
        pads = np.full(int(num_image_tokens), self.image_pad_id, dtype=np.int64)
        return np.concatenate([ids[:i], pads, ids[i + 1 :]])

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def stream(self, *, skip_special_tokens: bool = True) -> TextStream:
        return TextStream(self._tok, skip_special_tokens=skip_special_tokens)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def vocabulary(self) -> Mapping[str, int]:
        return self._tok.get_vocab(with_added_tokens=True)
