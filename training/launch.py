"""What a launch will do, before it costs a GPU hour: the accelerate config checked by accelerate's own
launcher code, and the resolved plan (processes, sharding, batch geometry, rollouts, memory) that
``segzero-edge train CONFIG --dry-run`` prints without loading a model.

Launchers, as measured here (accelerate 1.x, torch 2.13):

* GPUs: ``accelerate launch --config_file training/accelerate/fsdp.yaml -m segzero_edge.training CONFIG``
  (or ``deepspeed_zero3.yaml``); accelerate starts the processes with ``torch.distributed.run``.
* CPU: ``torchrun --nproc_per_node N -m segzero_edge.training CONFIG`` (gloo). ``accelerate launch`` with a
  ``MULTI_CPU`` config starts *one* process unless an MPI launcher is configured (it hands multi-CPU runs to
  ``mpirun``), and it enables FSDP / DeepSpeed only for GPU-like distributed types.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segzero_edge.cli.base import positive_int
from segzero_edge.errors import ConfigError

from .config import TrainConfig

#: Bytes per policy parameter that every process holds unsharded: fp32 weights, fp32 gradients and AdamW's
#: two fp32 moments. The reference model (``grpo.beta > 0``) adds its fp32 weights.
POLICY_BYTES_PER_PARAM = 4 + 4 + 8
REFERENCE_BYTES_PER_PARAM = 4


@dataclass(frozen=True)
class AccelerateLaunch:
    """An accelerate config file as ``accelerate launch`` reads it.

    Attributes:
        path: the file.
        distributed_type: ``NO``, ``MULTI_GPU``, ``MULTI_CPU``, ``FSDP``, ``DEEPSPEED``, ...
        num_processes, num_machines: from the file.
        use_cpu: ``use_cpu: true`` in the file.
        settings: the ``fsdp_config`` / ``deepspeed_config`` block.
    """

    path: Path
    distributed_type: str
    num_processes: int
    num_machines: int
    use_cpu: bool
    settings: dict[str, Any] = field(default_factory=dict)


def _launch_option_names() -> set[str]:
    from accelerate.commands.launch import launch_command_parser

    return {a.dest for a in launch_command_parser()._actions}


def check_accelerate_config(path: str | Path) -> AccelerateLaunch:
    """Validate ``path`` with accelerate's own code: ``load_config_from_file`` (field types and enums), the
    launcher's ``_validate_launch_command`` (how ``accelerate launch`` merges the file into its options),
    ``FullyShardedDataParallelPlugin`` on the environment the launcher would export (FSDP), and every key of
    the ``fsdp_config`` / ``deepspeed_config`` block against the launcher's options (accelerate ignores
    unknown keys without a word).

    Raises:
        ConfigError: the file is missing or any of those checks fails.
    """
    import os
    from unittest import mock

    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    path = Path(path)
    if not path.is_file():  # a shipped config by name: fsdp, deepspeed_zero3
        from importlib import resources

        shipped = Path(str(resources.files(__package__) / "accelerate" / f"{path.name.removesuffix('.yaml')}.yaml"))
        if not shipped.is_file():
            raise ConfigError(
                f"accelerate config {path} does not exist", hint="`segzero-edge train list` shows the shipped ones"
            )
        path = shipped
    try:
        cluster = load_config_from_file(str(path))
        args = launch_command_parser().parse_args(["--config_file", str(path), "train.py"])
        args, _, _ = _validate_launch_command(args)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"accelerate rejects {path}: {exc}") from exc
    kind = (
        cluster.distributed_type.value if hasattr(cluster.distributed_type, "value") else str(cluster.distributed_type)
    )
    block = dict(cluster.fsdp_config or {}) if kind == "FSDP" else dict(cluster.deepspeed_config or {})
    unknown = sorted(set(block) - _launch_option_names())
    if unknown:
        raise ConfigError(
            f"{path}: accelerate does not know {unknown} (it would ignore them)",
            hint="compare with `accelerate launch --help`",
        )
    if kind == "FSDP":
        from accelerate.utils import FullyShardedDataParallelPlugin
        from accelerate.utils.launch import prepare_multi_gpu_env

        try:
            env = prepare_multi_gpu_env(args)
            with mock.patch.dict(os.environ, env):
                FullyShardedDataParallelPlugin()
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"accelerate rejects the FSDP settings of {path}: {exc}") from exc
    return AccelerateLaunch(
        path=path,
        distributed_type=kind,
        num_processes=int(cluster.num_processes or 1),
        num_machines=int(cluster.num_machines or 1),
        use_cpu=bool(cluster.use_cpu),
        settings=block,
    )


def distributed_state(cfg: TrainConfig) -> Any:
    """accelerate's ``PartialState`` for this run's device.

    On the CPU it must be made with ``cpu=True``: a plain ``PartialState()`` under ``torchrun`` on a machine
    without a GPU reports one process (``DistributedType.NO``), so the batch geometry would be computed for
    one process while the Trainer (``use_cpu``) then trains with all of them."""
    from accelerate import PartialState

    from .grpo import resolve_device

    return PartialState(cpu=resolve_device(cfg) == "cpu")


def check_sharding(trainer: Any) -> None:
    """Refuse a launch whose sharding accelerate dropped without a word.

    ``accelerate launch`` with an FSDP or DeepSpeed config exports ``ACCELERATE_USE_FSDP`` /
    ``ACCELERATE_USE_DEEPSPEED``, but accelerate (1.x) enables them only for GPU-like distributed types: on
    the CPU the run silently becomes unsharded DDP, with every process holding the whole model."""
    import os

    for env, enabled, name in (
        ("ACCELERATE_USE_FSDP", trainer.is_fsdp_enabled, "FSDP"),
        ("ACCELERATE_USE_DEEPSPEED", trainer.is_deepspeed_enabled, "DeepSpeed"),
    ):
        if os.environ.get(env, "false").lower() == "true" and not enabled:
            raise ConfigError(
                f"the accelerate config asks for {name}, but accelerate did not enable it for this run "
                f"({trainer.accelerator.distributed_type.value} on {trainer.args.device}): it would train unsharded",
                hint=f"{name} needs GPUs; on the CPU launch without it (torchrun --nproc_per_node N, see "
                "docs/training.md)",
            )


def count_parameters(model_dir: Path) -> int | None:
    """Parameters of a local safetensors checkpoint, from the file headers only (no weights read); None when
    the checkpoint is not a local safetensors directory."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors")) if model_dir.is_dir() else []
    if not files:
        return None
    total = 0
    for f in files:
        with safe_open(str(f), "np") as st:
            for key in st.keys():  # noqa: SIM118 (safe_open is not a mapping)
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= int(d)
                total += n
    return total


@dataclass(frozen=True)
class RunPlan:
    """The resolved plan of a training launch (``plan_run``).

    Attributes:
        processes: training processes in all (machines x processes per machine).
        sharding: how the policy's states are split over the processes.
        prompts_per_step, rollouts_per_prompt: ``grpo.prompts_per_step`` and ``grpo.num_generations``.
        completions_per_step: rollouts per optimizer step (their product), the global batch.
        completions_per_process: the share of each process per step.
        gradient_accumulation: micro-batches per step and process.
        parameters: policy parameters (None: unknown without the checkpoint files).
        memory_gb_per_process: the policy (fp32 weights, gradients, AdamW moments) and reference weights per
            process, in GB; activations, generation KV cache and vLLM are not included.
        warnings: what will not happen as the files suggest.
    """

    processes: int
    sharding: str
    prompts_per_step: int
    rollouts_per_prompt: int
    completions_per_step: int
    completions_per_process: int
    gradient_accumulation: int
    parameters: int | None
    memory_gb_per_process: float | None
    warnings: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        if self.memory_gb_per_process is None:
            mem = "unknown (the checkpoint is not a local safetensors directory)"
        else:
            p = self.parameters
            count = f"{p / 1e9:.2f}B" if p >= 1e9 else f"{p / 1e6:.1f}M"
            mem = (
                f"{self.memory_gb_per_process:.3g} GB per process for {count} parameters (fp32 weights, gradients, "
                "AdamW moments and reference weights; activations and the generation KV cache come on top)"
            )
        out = [
            f"processes      {self.processes}",
            f"sharding       {self.sharding}",
            f"global batch   {self.completions_per_step} completions per optimizer step "
            f"({self.prompts_per_step} prompts x {self.rollouts_per_prompt} rollouts)",
            f"per process    {self.completions_per_process} completions per step, "
            f"gradient accumulation {self.gradient_accumulation}",
            f"memory         {mem}",
        ]
        return out + [f"WARNING        {w}" for w in self.warnings]


def plan_run(cfg: TrainConfig, launch: AccelerateLaunch | None = None, processes: int | None = None) -> RunPlan:
    """The plan of training ``cfg`` with ``launch`` (an accelerate config) or ``processes`` (torchrun's
    ``--nproc_per_node x --nnodes``; default: ``WORLD_SIZE`` of the environment, else 1).

    Raises:
        ConfigError: the batch geometry does not divide over the processes.
    """
    import os

    from .grpo import gradient_accumulation

    warnings: list[str] = []
    sharded = False
    if launch is not None:
        n = launch.num_processes
        kind = launch.distributed_type
        if kind == "FSDP":
            sharded = True
            version = int(launch.settings.get("fsdp_version", 1))
            sharding = f"FSDP{version} full shard over {n} processes"
        elif kind == "DEEPSPEED":
            stage = int(launch.settings.get("zero_stage", 0))
            sharded = stage == 3
            sharding = f"DeepSpeed ZeRO-{stage} over {n} processes" + ("" if sharded else " (weights replicated)")
        else:
            sharding = "none: every process holds the whole model (DDP)" if n > 1 else "none (one process)"
        if launch.use_cpu and kind in ("FSDP", "DEEPSPEED"):
            warnings.append(
                f"{kind} with use_cpu: accelerate does not shard on the CPU; the trainer refuses the launch "
                "(use torchrun --nproc_per_node N on the CPU)"
            )
        if kind == "MULTI_CPU" and n > 1:
            warnings.append(
                f"accelerate launch starts ONE process for a MULTI_CPU config without an MPI launcher, not {n}: "
                f"use torchrun --nproc_per_node {n} -m segzero_edge.training CONFIG"
            )
    else:
        n = processes or int(os.environ.get("WORLD_SIZE", "1"))
        sharding = "none: every process holds the whole model (DDP)" if n > 1 else "none (one process)"
    accum = gradient_accumulation(cfg, n)
    per_step = cfg.grpo.prompts_per_step * cfg.grpo.num_generations
    params = count_parameters(Path(cfg.model.name_or_path))
    memory = None
    if params is not None:
        per_param = POLICY_BYTES_PER_PARAM + (REFERENCE_BYTES_PER_PARAM if cfg.grpo.beta > 0 else 0)
        memory = params * per_param / (n if sharded else 1) / 1e9
    return RunPlan(
        processes=n,
        sharding=sharding,
        prompts_per_step=cfg.grpo.prompts_per_step,
        rollouts_per_prompt=cfg.grpo.num_generations,
        completions_per_step=per_step,
        completions_per_process=per_step // n,
        gradient_accumulation=accum,
        parameters=params,
        memory_gb_per_process=memory,
        warnings=tuple(warnings),
    )


def plan_dict(plan: RunPlan) -> dict[str, Any]:
    """``plan`` as JSON-ready values."""
    return json.loads(json.dumps(plan.__dict__, default=list))


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--dry-run`` options that describe the launch."""
    parser.add_argument(
        "--accelerate-config",
        default=None,
        metavar="YAML",
        help="with --dry-run: the accelerate config the run will be launched with (checked, and used for the plan)",
    )
    parser.add_argument(
        "--processes",
        type=positive_int,
        default=None,
        help="with --dry-run and no --accelerate-config: processes in all (torchrun --nproc_per_node x --nnodes)",
    )
