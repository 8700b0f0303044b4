"""Fixtures for the answer tests: both decoder backends, and a Qwen-like tokenizer + constraint."""

from __future__ import annotations

import pytest

from segzero_edge.answer import decode as answer


def _native_available() -> bool:
    return "native" in answer._BACKENDS


needs_native = pytest.mark.skipif(
    not _native_available(), reason="segzero_edge._native is not built (run `make install`)"
)


@pytest.fixture(params=["native", "python"])
def decode(request):
    """``decode(text, image_size=None, model_size=840) -> Answer`` with one backend (both are tested)."""
    if request.param not in answer._BACKENDS:
        pytest.skip("segzero_edge._native is not built (run `make install`)")
    fn = answer._BACKENDS[request.param]

    def run(text, image_size=None, model_size=840):
        mw, mh = (model_size, model_size) if isinstance(model_size, int) else model_size
        w, h = image_size if image_size is not None else (mw, mh)
        return fn(text, w, h, mw, mh)

    return run


@pytest.fixture(scope="session")
def qwen_tokenizer():
    """A Qwen-like byte-level BPE ``tokenizers.Tokenizer`` (digits one per token, Qwen specials), from the
    shared builder ``segzero_edge.reference.builders.tokenizer.build_qwen_tokenizer``."""
    from segzero_edge.reference.builders.tokenizer import build_qwen_tokenizer

    return build_qwen_tokenizer()


@pytest.fixture(scope="session")
def qwen_constraint(qwen_tokenizer):
    if not _native_available():
        pytest.skip("segzero_edge._native is not built (run `make install`)")
    from segzero_edge.answer.constraint import AnswerConstraint

    return AnswerConstraint.from_tokenizer(qwen_tokenizer, model_size=840)
