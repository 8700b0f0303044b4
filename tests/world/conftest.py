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


@pytest.fixture(scope="session")
def world_engine(tmp_path_factory):
    """The ``make demo`` engine: ``WORK/engine_world_int4`` (``segzero-edge demo --work-dir WORK`` reuses it)."""
    pytest.importorskip("torch", reason="the export needs torch")
    pytest.importorskip("sam2", reason="the SAM2 export needs the official sam2 package")
    pytest.importorskip("onnxruntime", reason="the runtime needs onnxruntime")
    from segzero_edge.world.demo import export_world_engine

    out, _ = export_world_engine(tmp_path_factory.mktemp("world") / "engine_world_int4", "int4")
    return out
