"""The tiny policy learns (seeded, with a stated margin), and a run killed with SIGKILL resumes with the
same step count, optimizer state and weights, ending where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from .conftest import tiny_config  # noqa: E402
from .test_grpo_smoke import digit_share  # noqa: E402

#: The learning test's required gain of the mean reward (last 5 steps minus first 5 steps). Seeded runs
#: on a 2-core CPU go from ~0.01 to ~1.0 within 25 steps; 0.3 leaves room for thread-order noise.
LEARNING_MARGIN = 0.3


@pytest.mark.slow
def test_tiny_policy_learns_a_learnable_reward(tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path):
    """On a random tiny policy every Seg-Zero reward is 0 (no signal). Seg-Zero answers are numbers, so
    the learnable task here is "write digits": reward = share of the completion's characters that are
    digits (~1% at the start). The full recipe runs (KL 5e-3 to the frozen reference, entropy bonus,
    clip 0.2, group-normalised advantages), with a high learning rate so it fits the test budget."""
    from segzero_edge.training.grpo import build_trainer

    cfg = tiny_config(
        tiny_qwen_dir,
        tiny_seg_data,
        tmp_path / "run",
        {
            "optim.learning_rate": 2e-2,
            "run.max_steps": 25,
            "run.seed": 0,
            "grpo.num_generations": 4,
            "grpo.prompts_per_step": 2,
            "grpo.per_device_batch_size": 8,
            "grpo.max_completion_length": 8,
        },
    )
    trainer = build_trainer(cfg, reward_funcs=[digit_share], cache_dir=hf_cache).trainer
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert len(rewards) == 25
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(
        f"\nlearning: mean reward {first:.3f} (steps 1-5) -> {last:.3f} (steps 21-25), "
        f"gain {last - first:.3f} >= {LEARNING_MARGIN} required; 25 steps in {seconds:.0f} s"
    )
    assert last - first >= LEARNING_MARGIN, rewards
    assert [h["kl"] for h in trainer.state.log_history if "kl" in h][-1] > 0


def _complete(ckpt: Path) -> bool:
    from segzero_edge.training.checkpoints import checkpoint_problem

    return ckpt.is_dir() and checkpoint_problem(ckpt) is None


class ResumeProbe:
    """Records, when training (re)starts, the step and the optimizer / model state it starts from."""

    def __init__(self):
        self.start_step = None
        self.optimizer_state = None
        self.weights = None

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.start_step = state.global_step
        self.optimizer_state = {
            k: {n: t.clone() for n, t in v.items()} for k, v in optimizer.state_dict()["state"].items()
        }
        self.weights = {n: p.detach().clone() for n, p in model.named_parameters()}

    def __getattr__(self, name):  # every other callback event: nothing to do
        if name.startswith("on_"):
            return lambda *a, **k: None
        raise AttributeError(name)


@pytest.mark.slow
def test_resume_after_sigkill(tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path):
    import yaml

    from segzero_edge.reference.qwen import load_qwen_model
    from segzero_edge.training.checkpoints import find_resume_checkpoint
    from segzero_edge.training.config import dump_config
    from segzero_edge.training.grpo import build_trainer, train

    # 4 rows, 2 prompts per step: 2 steps per epoch. The kill comes after checkpoint-2, so the resumed run
    # starts epoch 1 (a new data permutation) and ends mid-epoch 2.
    overrides = {
        "run.max_steps": 5,
        "run.save_steps": 2,
        "optim.learning_rate": 1e-2,
        "data.max_rows": 4,
        "grpo.max_completion_length": 8,
    }
    killed_dir = tmp_path / "killed"
    cfg = tiny_config(tiny_qwen_dir, tiny_seg_data, killed_dir, overrides)
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(dump_config(cfg))
    assert yaml.safe_load(cfg_file.read_text())["run"]["max_steps"] == 5

    # 1. a real training process, killed with SIGKILL right after checkpoint-2 is complete
    env = {**os.environ, "HF_DATASETS_CACHE": hf_cache, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "segzero_edge.training", str(cfg_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while not _complete(killed_dir / "checkpoint-2"):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint-2 within 240 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "final").exists()
    resume_from = find_resume_checkpoint(killed_dir, "auto")
    resumed_step = int(Path(resume_from).name.split("-")[1])
    assert resumed_step >= 2

    # 2. resume in this process: same step count, optimizer state and weights as the checkpoint
    probe = ResumeProbe()
    final = train(cfg, callbacks=[probe], cache_dir=hf_cache)
    assert probe.start_step == resumed_step
    saved_opt = torch.load(Path(resume_from) / "optimizer.pt", weights_only=True)["state"]
    assert saved_opt and set(saved_opt) == set(probe.optimizer_state)
    for k, st in saved_opt.items():
        assert int(st["step"]) == resumed_step
        torch.testing.assert_close(probe.optimizer_state[k]["exp_avg"], st["exp_avg"], rtol=0, atol=0)
        torch.testing.assert_close(probe.optimizer_state[k]["exp_avg_sq"], st["exp_avg_sq"], rtol=0, atol=0)
    saved_w = dict(load_qwen_model(resume_from).named_parameters())  # from_pretrained converts key names
    base_w = dict(load_qwen_model(tiny_qwen_dir).named_parameters())
    for name, w in probe.weights.items():
        torch.testing.assert_close(w, saved_w[name].detach(), rtol=0, atol=0)
    assert any(not torch.equal(w, base_w[n]) for n, w in probe.weights.items())  # not the base weights
    state = json.loads((Path(resume_from) / "trainer_state.json").read_text())
    assert state["global_step"] == resumed_step
    meta = json.loads((final / "training_meta.json").read_text())
    assert meta["global_step"] == 5 and meta["resumed_from"] == resume_from
    logged = [json.loads(x)["step"] for x in (killed_dir / "metrics.jsonl").read_text().splitlines()]
    assert logged[-(5 - resumed_step) :] == list(range(resumed_step + 1, 6))

    # 3. an uninterrupted run of the same config ends with the same weights
    ref_cfg = tiny_config(tiny_qwen_dir, tiny_seg_data, tmp_path / "straight", overrides)
    ref = build_trainer(ref_cfg, cache_dir=hf_cache).trainer
    ref.train()
    resumed = dict(load_qwen_model(final).named_parameters())
    worst = max(float((p.detach() - resumed[n].detach()).abs().max()) for n, p in ref.model.named_parameters())
    print(
        f"\nresume: killed after checkpoint-{resumed_step}, resumed to step 5; "
        f"max |weight difference| to an uninterrupted run = {worst:.2e}"
    )
    assert worst < 1e-5
