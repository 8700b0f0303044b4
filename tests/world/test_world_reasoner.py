"""The world's tiny reasoner: SFT learns and resumes exactly. (The shipped checkpoint's accuracy through
export and the runtime: tests/world/test_world_accuracy.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

#: Required drop of the SFT loss (mean of the last 2 steps vs the first step) in 8 steps.
SFT_LOSS_DROP = 0.5


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    """A tiny (112 px) world reasoner with a tokenizer trained on world texts, and 16 train rows."""
    from segzero_edge.export.builders.qwen import build_tiny_qwen25vl
    from segzero_edge.training.world.dataset import read_index, write_world_dataset
    from segzero_edge.training.world.reasoner import world_corpus

    root = tmp_path_factory.mktemp("world_sft")
    written = write_world_dataset(root / "data", input_size=112, splits=("train",), counts={"train": 16})
    import pyarrow.parquet as pq

    sol = {r["id"]: r["solution"] for f in sorted((written["train_segzero"] / "data").glob("*.parquet"))
           for r in pq.read_table(f).to_pylist()}
    rows = [(r["text"], r["reasoning"], sol[r["id"]]) for r in read_index(written["train"])]
    ckpt = build_tiny_qwen25vl(root / "init", "tiny", input_size=112, tokenizer_corpus=world_corpus(rows),
                               bpe_vocab_size=600)
    return ckpt, written


def test_few_sft_steps_reduce_the_loss(tiny_world, tmp_path):
    from segzero_edge.training.world.sft import SFTConfig, run_sft

    ckpt, written = tiny_world
    cfg = SFTConfig(steps=8, batch_size=4, learning_rate=3e-3, warmup_steps=0, save_steps=4, threads=1)
    out = run_sft(ckpt, tmp_path / "sft", written["train_segzero"], written["train"], cfg, progress=False)
    losses = out["losses"]
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert losses[0] - np.mean(losses[-2:]) >= SFT_LOSS_DROP, losses
    assert (out["final"] / "model.safetensors").exists()
    assert json.loads((out["final"] / "segzero_edge.json").read_text())["input_size"] == 112

    # an interrupted run (stopped after 3 steps, state saved) resumes and ends with the same weights
    part = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False,
                   stop_after=3)
    assert part["final"] is None and part["steps"] == 3
    rest = run_sft(ckpt, tmp_path / "sft2", written["train_segzero"], written["train"], cfg, progress=False)
    assert rest["losses"] == losses
    from safetensors.numpy import load_file

    a, b = load_file(out["final"] / "model.safetensors"), load_file(rest["final"] / "model.safetensors")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
