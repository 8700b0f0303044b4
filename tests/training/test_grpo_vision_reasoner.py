"""GRPO with the VisionReasoner family on the tiny Qwen2.5-VL and the real TRL GRPOTrainer: the multi-object
data, the VisionReasoner prompt, its three rewards logged, and a final checkpoint that records the family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")

from .conftest import TINY_INPUT_SIZE, tiny_config, write_index_source


@pytest.mark.slow
def test_a_vision_reasoner_run_trains_on_object_lists_and_records_its_family(
    tiny_qwen_dir, hf_cache, tmp_path, monkeypatch
):
    from segzero_edge.prompt import read_checkpoint_meta, vision_reasoner_user_text
    from segzero_edge.training.grpo import build_trainer, train
    from segzero_edge.training.prepare import prepare_dataset

    src = write_index_source(tmp_path / "src", n=4)
    prepare_dataset("index", src, tmp_path / "data", input_size=TINY_INPUT_SIZE, family="vision_reasoner")
    out = tmp_path / "run"
    overrides = {"model.family": "vision_reasoner", "rewards.set": "vision_reasoner", "run.max_steps": 1}
    cfg = tiny_config(tiny_qwen_dir, tmp_path / "data", out, overrides)
    bundle = build_trainer(cfg, cache_dir=hf_cache)
    assert bundle.family == "vision_reasoner"
    row = bundle.trainer.train_dataset[0]
    assert row["prompt"][0]["content"] == vision_reasoner_user_text(row["problem"])
    assert [f.__name__ for f in bundle.trainer.reward_funcs] == ["format", "accuracy", "non_repeat"]

    final = train(cfg, cache_dir=hf_cache)
    assert read_checkpoint_meta(final)["family"] == "vision_reasoner"
    records = [json.loads(x) for x in Path(out, "metrics.jsonl").read_text().splitlines()]
    logged = {k for r in records for k in r}
    assert {"rewards/format/mean", "rewards/accuracy/mean", "rewards/non_repeat/mean"} <= logged
    # a Seg-Zero reward set with this checkpoint's family is refused
    with pytest.raises(Exception, match="does not go with"):
        build_trainer(tiny_config(final, tmp_path / "data", tmp_path / "again"), cache_dir=hf_cache)
