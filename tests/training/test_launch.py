"""The shipped accelerate configs pass accelerate's own launcher validation, the check can fail, and
``--dry-run`` prints the launch plan (processes, sharding, global batch, rollouts, memory) without loading a
model."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

pytest.importorskip("accelerate")

from segzero_edge.errors import ConfigError
from segzero_edge.training.config import load_config
from segzero_edge.training.launch import (
    POLICY_BYTES_PER_PARAM,
    REFERENCE_BYTES_PER_PARAM,
    check_accelerate_config,
    count_parameters,
    plan_run,
)

SHIPPED = sorted(
    p for p in (resources.files("segzero_edge.training") / "accelerate").iterdir() if p.name.endswith(".yaml")
)


def test_every_shipped_accelerate_config_passes_the_launchers_validation():
    assert {p.name for p in SHIPPED} == {"fsdp.yaml", "deepspeed_zero3.yaml"}
    kinds = {}
    for path in SHIPPED:
        launch = check_accelerate_config(Path(str(path)))
        kinds[path.name] = launch.distributed_type
        assert launch.num_processes == 8 and launch.num_machines == 1 and not launch.use_cpu
    assert kinds == {"fsdp.yaml": "FSDP", "deepspeed_zero3.yaml": "DEEPSPEED"}
    fsdp = check_accelerate_config("fsdp")  # shipped configs by name
    assert fsdp.settings["fsdp_version"] == 2 and fsdp.settings["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

    for cls in fsdp.settings["fsdp_transformer_layer_cls_to_wrap"].split(","):
        assert hasattr(modeling_qwen2_5_vl, cls), cls  # the wrap policy names classes that exist
    assert int(check_accelerate_config("deepspeed_zero3").settings["zero_stage"]) == 3


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("distributed_type: FSDPX\nnum_processes: 2\n", "not a valid DistributedType"),
        ("distributed_type: FSDP\nnum_processes: 2\nfsdp_config:\n  fsdp_version: 2\n  fsdp_bogus: 1\n", "fsdp_bogus"),
        ("distributed_type: DEEPSPEED\nnum_processes: 2\ndeepspeed_config:\n  zero_stag: 3\n", "zero_stag"),
    ],
)
def test_the_check_fails_on_what_accelerate_would_reject_or_ignore(tmp_path, text, match):
    bad = tmp_path / "bad.yaml"
    bad.write_text("compute_environment: LOCAL_MACHINE\n" + text)
    with pytest.raises(ConfigError, match=match):
        check_accelerate_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        check_accelerate_config(tmp_path / "missing.yaml")


def test_plans_of_the_shipped_recipes_on_the_shipped_configs():
    for recipe in ("seg_zero_3b", "seg_zero_7b"):
        cfg = load_config(recipe)
        plan = plan_run(cfg, check_accelerate_config("fsdp"))
        assert plan.processes == 8 and plan.sharding.startswith("FSDP2 full shard over 8")
        assert plan.completions_per_step == 128 and plan.completions_per_process == 16
        assert plan.gradient_accumulation == 16 and plan.parameters is None  # a Hub id: nothing read
        assert plan.warnings == ()
        zero3 = plan_run(cfg, check_accelerate_config("deepspeed_zero3"))
        assert zero3.sharding.startswith("DeepSpeed ZeRO-3 over 8") and zero3.gradient_accumulation == 16


def test_plan_warns_about_launches_that_would_not_do_what_the_file_says(tmp_path):
    cfg = load_config("seg_zero_7b")
    multi_cpu = tmp_path / "multi_cpu.yaml"
    multi_cpu.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_processes: 2\nuse_cpu: true\n"
    )
    (warning,) = plan_run(cfg, check_accelerate_config(multi_cpu)).warnings
    assert "ONE process" in warning and "torchrun --nproc_per_node 2" in warning
    fsdp_cpu = tmp_path / "fsdp_cpu.yaml"
    fsdp_cpu.write_text(Path(str(SHIPPED[1])).read_text().replace("use_cpu: false", "use_cpu: true"))
    (warning,) = plan_run(cfg, check_accelerate_config(fsdp_cpu)).warnings
    assert "does not shard on the CPU" in warning
    with pytest.raises(ConfigError, match="not divisible"):
        plan_run(cfg, processes=3)  # 128 completions over 3 processes


def test_memory_estimate_from_the_checkpoint_headers(tiny_qwen_dir, tiny_seg_data, tmp_path):
    from safetensors.torch import load_file

    from .conftest import tiny_config

    n = sum(t.numel() for t in load_file(str(tiny_qwen_dir / "model.safetensors")).values())
    assert count_parameters(tiny_qwen_dir) == n
    cfg = tiny_config(tiny_qwen_dir, tiny_seg_data, tmp_path / "run")
    plan = plan_run(cfg, processes=2)
    per_param = POLICY_BYTES_PER_PARAM + REFERENCE_BYTES_PER_PARAM
    assert plan.memory_gb_per_process == pytest.approx(n * per_param / 1e9)
    assert (plan.completions_per_step, plan.completions_per_process, plan.gradient_accumulation) == (8, 4, 1)


def test_dry_run_prints_the_plan_without_loading_a_model(tiny_qwen_dir, tiny_seg_data, tmp_path, monkeypatch, capsys):
    import transformers

    from segzero_edge.training.cli import main
    from segzero_edge.training.config import dump_config

    from .conftest import tiny_config

    def refuse(*args, **kwargs):
        raise AssertionError("a dry run loaded a model")

    monkeypatch.setattr(transformers.Qwen2_5_VLForConditionalGeneration, "from_pretrained", refuse)
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(dump_config(tiny_config(tiny_qwen_dir, tiny_seg_data, tmp_path / "run")))
    assert main([str(cfg_file), "--dry-run", "--processes", "2"]) == 0
    out = capsys.readouterr().out
    assert "#   processes      2" in out and "global batch   8 completions per optimizer step (2 prompts x 4" in out
    assert "per process    4 completions per step, gradient accumulation 1" in out
    assert "GB per process" in out and not (tmp_path / "run").exists()
    assert main([str(cfg_file), "--dry-run", "--processes", "3"]) == 1  # 8 completions over 3: refused
