"""GRPO on the tiny Qwen2.5-VL with the real TRL GRPOTrainer: a few steps with KL on, every trainable
parameter moves, every metric is logged, TRL's advantages and loss agree with our reference math, and
the final checkpoint carries its metadata and loads back."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from segzero_edge.training.callbacks import REQUIRED_METRICS  # noqa: E402
from segzero_edge.training.grpo_math import completion_mask, group_advantages, grpo_loss  # noqa: E402
from segzero_edge.training.rewards import COMPONENTS, reward_functions  # noqa: E402

from .conftest import TINY_INPUT_SIZE, tiny_config  # noqa: E402


def digit_share(completions, **kwargs):
    """Share of the completion's characters that are digits: has within-group variance on a random policy."""
    texts = [c[0]["content"] if isinstance(c, list) else c for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in texts]


class ColumnProbe:
    """A reward function that records which dataset columns TRL passes to reward functions."""

    __name__ = "column_probe"

    def __init__(self):
        self.keys: set[str] = set()

    def __call__(self, completions, **kwargs):
        self.keys |= set(kwargs)
        return [0.0] * len(completions)


@pytest.fixture(scope="module")
def smoke(tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path_factory):
    from segzero_edge.training.grpo import build_trainer

    out = tmp_path_factory.mktemp("smoke_run")
    cfg = tiny_config(
        tiny_qwen_dir,
        tiny_seg_data,
        out,
        {
            "optim.learning_rate": 1e-2,
            "optim.weight_decay": 0.0,  # no decay: a moved weight had a gradient
            "grpo.beta": 5e-3,
            "grpo.entropy_coef": 1e-3,
            "run.max_steps": 3,
        },
    )
    probe = ColumnProbe()
    funcs = [*reward_functions("strict", input_size=TINY_INPUT_SIZE), digit_share, probe]
    bundle = build_trainer(cfg, reward_funcs=funcs, cache_dir=hf_cache)
    trainer = bundle.trainer
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    ref_before = {n: p.detach().clone() for n, p in trainer.ref_model.named_parameters()}
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {
        "trainer": trainer,
        "bundle": bundle,
        "before": before,
        "ref_before": ref_before,
        "cfg": cfg,
        "probe": probe,
        "seconds": seconds,
        "funcs": funcs,
    }


@pytest.mark.slow
def test_every_trainable_parameter_changes_and_the_reference_is_frozen(smoke):
    trainer = smoke["trainer"]
    assert trainer.state.global_step == 3
    unchanged = [
        n
        for n, p in trainer.model.named_parameters()
        if p.requires_grad and torch.equal(p.detach(), smoke["before"][n])
    ]
    assert not unchanged, f"parameters that did not move: {unchanged}"
    assert len(smoke["before"]) > 20
    for n, p in trainer.ref_model.named_parameters():
        assert torch.equal(p.detach(), smoke["ref_before"][n]), f"reference model changed: {n}"


@pytest.mark.slow
def test_every_metric_is_logged_each_step(smoke):
    trainer = smoke["trainer"]
    records = [h for h in trainer.state.log_history if "reward" in h]
    assert [r["step"] for r in records] == [1, 2, 3]
    for rec in records:
        missing = [k for k in (*REQUIRED_METRICS, "rewards/digit_share/mean") if k not in rec]
        assert not missing, f"step {rec['step']} lacks {missing}"
        assert all(math.isfinite(rec[k]) for k in REQUIRED_METRICS)
    assert records[0]["kl"] == 0.0  # the policy starts equal to the frozen reference
    assert records[-1]["kl"] > 0.0  # KL is on (beta 5e-3) and the policy moved away
    assert 0.0 <= records[-1]["frac_reward_zero_std"] <= 1.0
    lines = [json.loads(x) for x in Path(smoke["cfg"].run.output_dir, "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    print(f"\nsmoke: 3 GRPO steps (8 completions each) in {smoke['seconds']:.1f} s")


@pytest.mark.slow
def test_reward_functions_get_the_dataset_columns(smoke):
    assert {"solution", "image", "problem", "id", "img_height", "img_width"} <= smoke["probe"].keys


@pytest.mark.slow
def test_trl_advantages_match_the_reference(smoke):
    trainer = smoke["trainer"]
    per_func = torch.tensor([list(trainer._logs["rewards"][f.__name__]) for f in smoke["funcs"]]).T
    assert per_func.shape == (8, len(smoke["funcs"]))  # the last generation batch: 2 prompts x 4
    expected = group_advantages(per_func.sum(1), 4, scale="group", eps=1e-4)
    got = torch.tensor(list(trainer._logs["advantages"]))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (per_func[:, -2].view(2, 4).std(1) > 0).any(), "digit_share should vary within a group"


def _crafted_inputs(trainer, seed=0):
    g = torch.Generator().manual_seed(seed)
    b, t = 4, 6
    tok = trainer.processing_class.tokenizer
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    completion_ids = torch.randint(5, 200, (b, t), generator=g)
    completion_ids[0, 2] = eos  # ends early: the rest is masked
    completion_ids[2, 4] = eos
    mask = completion_mask(completion_ids, eos)
    logps = (torch.rand(b, t, generator=g) * -3).requires_grad_(True)
    old = logps.detach() + torch.randn(b, t, generator=g) * 0.4  # ratios well outside [0.8, 1.2]
    ref = logps.detach() + torch.randn(b, t, generator=g) * 0.5
    entropies = torch.rand(b, t, generator=g) * 5
    advantages = torch.tensor([1.3, -0.7, 0.4, -1.0])
    inputs = {
        "prompt_ids": torch.randint(5, 200, (b, 3), generator=g),
        "prompt_mask": torch.ones(b, 3, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": mask,
        "advantages": advantages,
        "old_per_token_logps": old,
        "ref_per_token_logps": ref,
        "num_items_in_batch": mask.sum(),
    }
    return inputs, logps, entropies


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
def test_trl_loss_matches_the_reference_math(smoke, loss_type, monkeypatch):
    """Crafted log-probs through TRL's real loss code vs grpo_math: value, gradient and logged metrics."""
    trainer = smoke["trainer"]
    inputs, logps, entropies = _crafted_inputs(trainer)
    monkeypatch.setattr(trainer, "_get_per_token_logps_and_entropies", lambda *a, **k: (logps, entropies, None))
    monkeypatch.setattr(trainer, "loss_type", loss_type)
    # one micro-batch that is the whole generation batch (so "dapo"'s global token count is this batch's)
    monkeypatch.setattr(trainer, "current_gradient_accumulation_steps", 1, raising=False)
    monkeypatch.setattr(trainer.args, "steps_per_generation", 1)
    trainer.model.train()
    trainer._metrics["train"].clear()
    loss = trainer._compute_loss(trainer.model, inputs)
    (grad,) = torch.autograd.grad(loss, logps)

    ref = grpo_loss(
        logps,
        inputs["old_per_token_logps"],
        inputs["ref_per_token_logps"],
        inputs["advantages"],
        inputs["completion_mask"],
        beta=trainer.beta,
        eps_low=0.2,
        eps_high=0.2,
        loss_type=loss_type,
        entropies=entropies,
        entropy_coef=1e-3,
        max_completion_length=trainer.max_completion_length,
    )
    (ref_grad,) = torch.autograd.grad(ref["loss"], logps)
    torch.testing.assert_close(loss, ref["loss"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-7)
    m = trainer._metrics["train"]
    assert m["kl"][-1] == pytest.approx(ref["kl"], rel=1e-5)
    assert m["entropy"][-1] == pytest.approx(ref["entropy"], rel=1e-5)
    assert m["clip_ratio/low_mean"][-1] == pytest.approx(ref["clip_low"], abs=1e-7)
    assert m["clip_ratio/high_mean"][-1] == pytest.approx(ref["clip_high"], abs=1e-7)
    assert 0 < ref["clip_region"] < 1  # the crafted ratios do exercise the clip


@pytest.mark.slow
def test_final_checkpoint_has_meta_and_loads(smoke, tmp_path):
    from segzero_edge.prompt import PROMPT_VERSION, read_checkpoint_meta
    from segzero_edge.reference.qwen import load_qwen_model, load_qwen_processor
    from segzero_edge.training.checkpoints import read_training_meta, write_training_meta

    trainer, bundle = smoke["trainer"], smoke["bundle"]
    final = tmp_path / "final"
    trainer.save_model(str(final))
    write_training_meta(final, config=smoke["cfg"].to_dict(), input_size=bundle.input_size)
    assert read_checkpoint_meta(final) == {
        "prompt_version": PROMPT_VERSION,
        "input_size": TINY_INPUT_SIZE,
        "family": "seg_zero",
    }
    meta = read_training_meta(final)
    assert meta["prompt_version"] == PROMPT_VERSION and meta["config"]["grpo"]["beta"] == 5e-3
    assert {"torch", "transformers", "trl", "accelerate", "datasets"} <= set(meta["packages"])
    model = load_qwen_model(final)
    processor = load_qwen_processor(final)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p, dict(trainer.model.named_parameters())[name].detach(), rtol=0, atol=0)
    assert processor.tokenizer.convert_tokens_to_ids("<|im_end|>") == trainer.processing_class.tokenizer.eos_token_id
    assert len(COMPONENTS) == 5


@pytest.mark.slow
def test_sampling_settings_override_the_checkpoints_generation_config(tiny_qwen_dir, tiny_seg_data, hf_cache, tmp_path):
    """Real Qwen2.5-VL checkpoints ship near-greedy defaults (temperature 0.1, top_p 0.001, top_k 1,
    repetition penalty 1.05); the rollouts must sample with the recipe's settings instead."""
    import shutil

    from segzero_edge.training.grpo import VISION_SPECIAL_TOKENS, build_trainer

    ckpt = tmp_path / "qwen_like"
    shutil.copytree(tiny_qwen_dir, ckpt)
    gen = json.loads((ckpt / "generation_config.json").read_text())
    gen.update(do_sample=True, temperature=0.1, top_p=0.001, top_k=1, repetition_penalty=1.05)
    (ckpt / "generation_config.json").write_text(json.dumps(gen))
    cfg = tiny_config(ckpt, tiny_seg_data, tmp_path / "run")
    trainer = build_trainer(cfg, cache_dir=hf_cache).trainer
    effective, _ = trainer.model._prepare_generation_config(trainer.generation_config)
    assert (effective.do_sample, effective.temperature, effective.top_p) == (True, 1.0, 1.0)
    assert effective.top_k in (0, None) and effective.repetition_penalty == 1.0
    tok = trainer.processing_class.tokenizer
    assert sorted(effective.suppress_tokens) == sorted(tok.convert_tokens_to_ids(list(VISION_SPECIAL_TOKENS)))
    assert effective.max_new_tokens == 12
