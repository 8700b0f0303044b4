"""Which checkpoint a crashed run resumes from, and the final checkpoint's metadata files."""

from __future__ import annotations

import json

import pytest

from segzero_edge.errors import CheckpointError
from segzero_edge.prompt import PROMPT_VERSION, read_checkpoint_meta
from segzero_edge.training.checkpoints import (
    checkpoint_problem,
    find_resume_checkpoint,
    list_checkpoints,
    read_training_meta,
    write_training_meta,
)


def _ckpt(root, step, *, state="{}", weights=True, optimizer="optimizer.pt"):
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if state is not None:
        (d / "trainer_state.json").write_text(state)
    if weights:
        (d / "model.safetensors").write_bytes(b"x")
    if optimizer:
        (d / optimizer).write_bytes(b"x")
    return d


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    _ckpt(tmp_path, 2)
    good = _ckpt(tmp_path, 10, optimizer="optimizer.bin")  # FSDP full state dict
    _ckpt(tmp_path, 12, state='{"global_st')  # killed while writing trainer_state.json
    _ckpt(tmp_path, 14, state=None)  # killed before trainer_state.json
    _ckpt(tmp_path, 16, optimizer=None)
    (tmp_path / "checkpoint-x").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"checkpoint-{s}" for s in (2, 10, 12, 14, 16)]
    assert find_resume_checkpoint(tmp_path, "auto") == str(good)
    assert find_resume_checkpoint(tmp_path, "never") is None
    assert find_resume_checkpoint(tmp_path / "empty", "auto") is None
    assert "truncated" in checkpoint_problem(tmp_path / "checkpoint-12")
    assert "no optimizer" in checkpoint_problem(tmp_path / "checkpoint-16")
    with pytest.raises(CheckpointError, match=r"no trainer_state\.json"):
        find_resume_checkpoint(tmp_path, str(tmp_path / "checkpoint-14"))


def test_training_meta(tmp_path):
    write_training_meta(tmp_path, config={"grpo": {"beta": 0.005}}, input_size=112, extra={"global_step": 3})
    meta = read_training_meta(tmp_path)
    assert meta["prompt_version"] == PROMPT_VERSION and meta["global_step"] == 3 and meta["input_size"] == 112
    assert {"python", "torch", "trl", "transformers"} <= set(meta["packages"])
    assert read_checkpoint_meta(tmp_path)["input_size"] == 112
    assert json.loads((tmp_path / "training_meta.json").read_text())["config"]["grpo"]["beta"] == 0.005
    with pytest.raises(CheckpointError):
        read_training_meta(tmp_path / "nope")
