"""Training config: shipped recipes, YAML + overrides with type checks, errors that name the key, the
GRPOConfig the recipe maps to (every option explicit), the CLI forms, and the layering rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from segzero_edge.errors import ConfigError
from segzero_edge.training.config import (
    TrainConfig,
    config_from_dict,
    dump_config,
    load_config,
    parse_overrides,
    recipe_names,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_vision_reasoner_recipe_has_the_official_settings():
    cfg = load_config("vision_reasoner_7b")
    assert (cfg.model.family, cfg.rewards.set, cfg.model.input_size) == ("vision_reasoner", "vision_reasoner", 840)
    assert cfg.data.train == "Ricky06662/VisionReasoner_multi_object_1k_840"
    g = cfg.grpo
    assert (g.num_generations, g.prompts_per_step, g.beta, g.max_completion_length) == (8, 16, 1e-2, 2000)
    assert (cfg.run.save_steps, cfg.vllm.tensor_parallel_size, cfg.vllm.gpu_memory_utilization) == (100, 2, 0.6)
    # the family and the reward set go together
    with pytest.raises(ConfigError, match="does not go with"):
        cfg.replace(["rewards.set=strict"])
    with pytest.raises(ConfigError, match="does not go with"):
        load_config("seg_zero_7b").replace(["model.family=vision_reasoner"])
    with pytest.raises(ConfigError, match=r"model\.family"):
        cfg.replace(["model.family=lens"])


def test_shipped_recipes_are_the_seg_zero_recipe():
    assert {"seg_zero_3b", "seg_zero_7b", "vision_reasoner_7b"} == set(recipe_names())
    for name, model in (
        ("seg_zero_3b", "Qwen/Qwen2.5-VL-3B-Instruct"),
        ("seg_zero_7b", "Qwen/Qwen2.5-VL-7B-Instruct"),
    ):
        cfg = load_config(name)
        assert cfg.model.name_or_path == model and cfg.model.input_size == 840
        g, o = cfg.grpo, cfg.optim
        assert (g.num_generations, g.prompts_per_step, g.beta, g.kl_estimator, g.loss_type) == (
            8,
            16,
            5e-3,
            "k3",
            "grpo",
        )
        assert (g.epsilon, g.epsilon_high, g.scale_rewards, g.num_iterations, g.entropy_coef) == (
            0.2,
            None,
            "group",
            1,
            1e-3,
        )
        assert (g.temperature, g.top_p, g.top_k, g.max_prompt_length, g.max_completion_length) == (
            1.0,
            1.0,
            0,
            1300,
            1300,
        )
        assert (o.learning_rate, o.lr_scheduler, o.warmup_steps, o.weight_decay, o.max_grad_norm) == (
            1e-6,
            "constant",
            0,
            0.01,
            1.0,
        )
        assert (o.adam_beta1, o.adam_beta2) == (0.9, 0.999)
        assert cfg.rewards.set == "strict" and cfg.run.save_steps == 50
        # the file spells out every field, and defaults equal the recipe
        assert (
            load_config(name).to_dict()
            == TrainConfig()
            .replace({"model.name_or_path": model, "model.input_size": 840, "run.output_dir": f"runs/{name}"})
            .to_dict()
        )


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = load_config(
        "seg_zero_3b",
        [
            "grpo.beta=0.01",
            "run.max_steps=20",
            "run.report_to=[wandb, tensorboard]",
            "vllm.enabled=true",
            "grpo.epsilon_high=null",
            "optim.learning_rate=2e-6",
            "run.gradient_checkpointing=false",
            "data.max_rows=null",
        ],
    )
    assert cfg.grpo.beta == 0.01 and cfg.run.max_steps == 20 and cfg.vllm.enabled is True
    assert cfg.run.report_to == ("wandb", "tensorboard") and cfg.optim.learning_rate == 2e-6
    assert cfg.run.gradient_checkpointing == "false"
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(cfg))
    assert load_config(path) == cfg
    assert load_config(str(path), {"grpo.num_generations": 16}).grpo.num_generations == 16
    assert parse_overrides(["a.b=x=y"]) == {"a.b": "x=y"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grpo.beta=abc", "grpo.beta: expected a float"),
        ("grpo.num_generations=2.5", "grpo.num_generations: expected an integer"),
        ("grpo.num_generations=1", "grpo.num_generations: must be >= 2"),
        ("grpo.loss_type=ppo", "grpo.loss_type: expected one of"),
        ("vllm.enabled=maybe", "vllm.enabled: expected true or false"),
        ("rewards.set=lenient", "rewards.set: must be one of"),
        ("rewards.thresholds=relative", "rewards.thresholds: must be one of"),
        ("model.input_size=100", "model.input_size"),
        ("optim.learning_rate=0", "optim.learning_rate: must be > 0"),
        ("grpo.betta=1", "unknown config key 'grpo.betta'"),
        ("nosection.x=1", "unknown config key"),
        ("justtext", "bad override"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")) as err:
        load_config("seg_zero_3b", [override])
    assert err.value.hint


def test_bad_yaml_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo: [1, 2]\n")
    with pytest.raises(ConfigError, match="grpo: expected a mapping"):
        load_config(bad)
    bad.write_text("grpo:\n  beta: 1\n   x: : :\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="did you mean 'grpo'"):
        config_from_dict({"grpoo": {}})
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_grpo_kwargs_set_every_recipe_option_explicitly(tiny_qwen_dir):
    from trl import GRPOConfig

    from segzero_edge.reference.qwen import load_qwen_processor
    from segzero_edge.training.grpo import build_grpo_args, grpo_kwargs, vision_token_ids

    tok = load_qwen_processor(tiny_qwen_dir).tokenizer
    cfg = load_config("seg_zero_7b")
    kw = grpo_kwargs(cfg, num_rows=2000, tokenizer=tok, world_size=8, device="cuda")
    expected = {
        "loss_type": "grpo",
        "beta": 5e-3,
        "num_generations": 8,
        "epsilon": 0.2,
        "epsilon_high": None,
        "scale_rewards": "group",
        "learning_rate": 1e-6,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": 0,
        "max_completion_length": 1300,
        "entropy_coef": 1e-3,
        "use_bias_correction_kl": False,
        "num_iterations": 1,
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": 16,
        "steps_per_generation": 16,
        "max_steps": 125,
        "bf16": True,
        "activation_checkpointing": True,
        "use_cpu": False,
        "importance_sampling_level": "token",
        "multi_objective_aggregation": "sum_then_normalize",
        "mask_truncated_completions": False,
        "use_vllm": False,
        "save_steps": 50,
        "optim": "adamw_torch",
        "adam_beta1": 0.9,
        "adam_beta2": 0.999,
        "vllm_max_model_length": 2600,
        "remove_unused_columns": False,
        "top_entropy_quantile": 1.0,
        "use_adaptive_entropy": False,
        "delta": None,
        "sync_ref_model": False,
    }
    assert {k: kw[k] for k in expected} == expected
    suppressed = kw["generation_kwargs"]["suppress_tokens"]
    assert suppressed == vision_token_ids(tok) and len(suppressed) == 5
    # every GRPOConfig field that changes the algorithm is given explicitly (not left to TRL's defaults)
    algorithm_fields = {
        "beta",
        "loss_type",
        "epsilon",
        "epsilon_high",
        "delta",
        "scale_rewards",
        "num_generations",
        "num_iterations",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "repetition_penalty",
        "max_completion_length",
        "entropy_coef",
        "use_adaptive_entropy",
        "top_entropy_quantile",
        "mask_truncated_completions",
        "importance_sampling_level",
        "use_bias_correction_kl",
        "multi_objective_aggregation",
        "reward_weights",
        "learning_rate",
        "lr_scheduler_type",
        "weight_decay",
        "max_grad_norm",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "optim",
        "warmup_steps",
        "gradient_accumulation_steps",
        "steps_per_generation",
        "off_policy_mask_threshold",
        "sync_ref_model",
        "disable_dropout",
        "vllm_importance_sampling_correction",
        "shuffle_dataset",
    }
    assert algorithm_fields <= set(kw) and algorithm_fields <= set(GRPOConfig.__dataclass_fields__)
    vllm = grpo_kwargs(cfg.replace(["vllm.enabled=true"]), num_rows=2000, tokenizer=tok, world_size=8, device="cuda")
    assert vllm["use_vllm"] and vllm["vllm_mode"] == "colocate" and set(vllm["generation_kwargs"]) == {"logit_bias"}
    # on CPU: fp32, no gradient checkpointing; the config builds
    cpu = build_grpo_args(
        cfg.replace(["run.output_dir=" + str(tiny_qwen_dir.parent / "o")]),
        num_rows=64,
        tokenizer=tok,
        world_size=1,
        device="cpu",
    )
    assert (cpu.bf16, cpu.activation_checkpointing, cpu.use_cpu, cpu.gradient_accumulation_steps) == (
        False,
        False,
        True,
        128,
    )
    assert cpu.generation_batch_size == 128 and cpu.max_steps == 4


def test_batch_geometry_errors(tiny_qwen_dir):
    from segzero_edge.errors import TrainingError
    from segzero_edge.reference.qwen import load_qwen_processor
    from segzero_edge.training.grpo import grpo_kwargs

    tok = load_qwen_processor(tiny_qwen_dir).tokenizer
    with pytest.raises(ConfigError, match="not divisible"):
        grpo_kwargs(
            load_config("seg_zero_3b", ["grpo.per_device_batch_size=3"]),
            num_rows=100,
            tokenizer=tok,
            world_size=8,
            device="cuda",
        )
    with pytest.raises(TrainingError, match=r"fewer than grpo\.prompts_per_step"):
        grpo_kwargs(load_config("seg_zero_3b"), num_rows=15, tokenizer=tok, world_size=8, device="cuda")
    with pytest.raises(ConfigError, match="needs CUDA"):
        grpo_kwargs(
            load_config("seg_zero_3b", ["vllm.enabled=true"]),
            num_rows=100,
            tokenizer=tok,
            world_size=1,
            device="cpu",
        )


def test_cli_forms(capsys, tmp_path):
    from segzero_edge.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "prepare-data" in out and "CONFIG.yaml" in out and "section.key=value" in out
    with pytest.raises(SystemExit):
        main(["train", "seg_zero_3b", "--help"])
    assert "--dry-run" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "prepare-data", "--help"])
    assert "reasonseg" in capsys.readouterr().out
    assert main(["train", "list"]) == 0
    listed = capsys.readouterr().out
    assert "seg_zero_3b" in listed and "fsdp.yaml" in listed and "deepspeed_zero3.yaml" in listed
    assert main(["train", "seg_zero_3b", "grpo.beta=abc"]) == 1
    assert "grpo.beta: expected a float" in capsys.readouterr().err


def test_dry_run(capsys, tiny_qwen_dir, tiny_seg_data):
    from segzero_edge.cli import main

    code = main(
        [
            "train",
            "seg_zero_3b",
            "--dry-run",
            f"model.name_or_path={tiny_qwen_dir}",
            "model.input_size=null",
            f"data.train={tiny_seg_data}",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "input size 112" in out and "8/8 rows kept" in out and "beta: 0.005" in out


def test_accelerate_configs_are_shipped_and_valid():
    from importlib import resources

    import yaml

    folder = resources.files("segzero_edge.training") / "accelerate"  # as installed
    fsdp = yaml.safe_load((folder / "fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["mixed_precision"] == "bf16"
    assert fsdp["fsdp_config"]["fsdp_version"] == 2 and fsdp["num_processes"] == 8
    assert "Qwen2_5_VLDecoderLayer" in fsdp["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"]
    ds = yaml.safe_load((folder / "deepspeed_zero3.yaml").read_text())
    assert ds["distributed_type"] == "DEEPSPEED" and ds["deepspeed_config"]["zero_stage"] == 3
    assert "gradient_accumulation_steps" not in ds["deepspeed_config"]  # the trainer derives it


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layering():
    for path in (REPO / "training").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("segzero_edge.export", "export"))}
        assert not bad, f"{path} imports {bad}: training/ must not import the exporter"
    for path in (REPO / "segzero_edge").rglob("*.py"):
        bad = {m for m in _imports(path) if m.startswith(("segzero_edge.training", "training"))}
        assert not bad, f"{path} imports {bad}: the runtime must not import training/"


def test_processor_is_pinned_to_the_input_size_and_renders_the_prompt_contract(tiny_qwen_dir, caplog):
    import numpy as np
    from PIL import Image
    from trl.data_utils import prepare_multimodal_messages

    from segzero_edge.prompt import IMAGE_PAD, expand_image_pads, render_chat
    from segzero_edge.reference.qwen import QWEN25VL_CHAT_TEMPLATE
    from segzero_edge.training.data import training_prompt
    from segzero_edge.training.grpo import check_prompt_contract, load_processor

    proc = load_processor(tiny_qwen_dir, 112)
    image = Image.fromarray(np.zeros((112, 112, 3), np.uint8))
    messages = prepare_multimodal_messages(training_prompt("The cup."), images=[image])
    out = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    text = proc.tokenizer.decode(out["input_ids"][0])
    assert text == expand_image_pads(render_chat("The cup."), 16)  # 112 px -> 4x4 merged patches
    assert list(out["image_grid_thw"][0]) == [1, 8, 8]
    big = proc(images=[Image.fromarray(np.zeros((56, 56, 3), np.uint8))], text=[IMAGE_PAD], return_tensors="pt")
    assert list(big["image_grid_thw"][0]) == [1, 8, 8]  # any image is brought to exactly 112x112 pixels
    # a checkpoint whose template renders something else is switched to Qwen2.5-VL's, with a warning
    proc.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    check_prompt_contract(proc)
    assert proc.chat_template == QWEN25VL_CHAT_TEMPLATE and "chat template" in caplog.text
