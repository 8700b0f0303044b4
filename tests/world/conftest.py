"""Fixtures shared by the world tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """A tiny (112 px) world reasoner with a tokenizer trained on world texts, and 16 train rows."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from segzero_edge.reference.builders.qwen import build_tiny_qwen25vl
    from segzero_edge.world.dataset import read_index, write_world_dataset
    from segzero_edge.world.reasoner import world_corpus

    root = tmp_path_factory.mktemp("world_sft")
    written = write_world_dataset(root / "data", input_size=112, splits=("train",), counts={"train": 16})
    import pyarrow.parquet as pq

    sol = {
        r["id"]: r["solution"]
        for f in sorted((written["train_segzero"] / "data").glob("*.parquet"))
        for r in pq.read_table(f).to_pylist()
    }
    rows = [(r["text"], r["reasoning"], sol[r["id"]]) for r in read_index(written["train"])]
    ckpt = build_tiny_qwen25vl(
        root / "init", "tiny", input_size=112, tokenizer_corpus=world_corpus(rows), bpe_vocab_size=600
    )
    return ckpt, written
