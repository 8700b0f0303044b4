"""Training configuration: frozen, validated dataclasses, loaded from YAML with ``key=value`` overrides.

A config has six sections (``model``, ``data``, ``rewards``, ``grpo``, ``optim``, ``run``) plus
``vllm``. Every field has the Seg-Zero value as its default, so a recipe file only needs what differs
(model path, data, output directory); the shipped recipes nevertheless spell every value out.

Overrides use dotted keys and are type-checked against the field they set::

    grpo.beta=0.01  run.max_steps=20  data.train=/data/refcocog_9k  vllm.enabled=true

Every error names the offending key (``ConfigError: grpo.beta: expected a float, got 'abc'``).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from segzero_edge.errors import ConfigError
from segzero_edge.prompt import SEG_ZERO, VISION_REASONER, validate_input_size

from .rewards import REWARD_SETS, THRESHOLD_MODES

#: The families GRPO trains: their answers are text the rewards score. LENS's mask head is trained on its
#: hidden states instead (not by this package).
TRAINABLE_FAMILIES = (SEG_ZERO, VISION_REASONER)

# --------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelConfig:
    """The policy to train.

    Attributes:
        name_or_path: an HF Qwen2.5-VL checkpoint directory (or a Hub id). The frozen KL reference is
            loaded from the same place.
        input_size: model input size in pixels (images are S x S). None: read it from the checkpoint's
            ``segzero_edge.json`` (840 when absent, as for the official checkpoints).
        attn_implementation: ``sdpa`` (default), ``eager`` or ``flash_attention_2`` (CUDA only).
        family: ``seg_zero`` (one object per answer) or ``vision_reasoner`` (a list of objects): the prompt,
            the data layout and the reward set it goes with. None: the checkpoint's ``segzero_edge.json``,
            else ``seg_zero``.
    """

    name_or_path: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    input_size: int | None = None
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = "sdpa"
    family: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.name_or_path), "model.name_or_path", "must not be empty")
        _require(
            self.family is None or self.family in TRAINABLE_FAMILIES,
            "model.family",
            f"must be one of {TRAINABLE_FAMILIES} or null (GRPO trains text answers), got {self.family!r}",
        )
        if self.input_size is not None:
            try:
                validate_input_size(self.input_size)
            except ValueError as exc:
                raise ConfigError(f"model.input_size: {exc}", hint="use a multiple of 28, e.g. 840") from exc


@dataclass(frozen=True)
class DataConfig:
    """Training data in the Seg-Zero layout (``id, problem, solution, image, img_height, img_width``).

    Attributes:
        train: a directory written by ``save_to_disk``, a directory of parquet files, one parquet file,
            or a Hub dataset id (e.g. ``Ricky06662/refCOCOg_2k_840``, Seg-Zero's data).
        max_rows: use only the first N rows (None: all).
        skip_bad_rows: report and skip invalid rows (True) or stop at the first (False).
    """

    train: str = "Ricky06662/refCOCOg_2k_840"
    max_rows: int | None = None
    skip_bad_rows: bool = True

    def __post_init__(self) -> None:
        _require(bool(self.train), "data.train", "must not be empty")
        _require(self.max_rows is None or self.max_rows > 0, "data.max_rows", "must be > 0 or null")


@dataclass(frozen=True)
class RewardConfig:
    """The rewards.

    Attributes:
        set: ``strict`` (Seg-Zero's training default), ``soft``, ``robust`` (our answer decoder), or
            ``vision_reasoner`` (the multi-object set; with ``model.family=vision_reasoner``).
        thresholds: ``absolute`` (Seg-Zero: box L1 < 10 px, point distance < 100 px at any input size) or
            ``scaled`` (both times ``input_size / 840``: the same relative difficulty for smaller inputs).
    """

    set: str = "strict"
    thresholds: str = "absolute"

    def __post_init__(self) -> None:
        _require(self.set in REWARD_SETS, "rewards.set", f"must be one of {REWARD_SETS}, got {self.set!r}")
        _require(
            self.thresholds in THRESHOLD_MODES,
            "rewards.thresholds",
            f"must be one of {THRESHOLD_MODES}, got {self.thresholds!r}",
        )


@dataclass(frozen=True)
class GRPOSection:
    """The GRPO algorithm (Seg-Zero values as defaults; see segzero_spec.md §3.4 and §4).

    Attributes:
        num_generations: completions sampled per prompt (the group size G).
        prompts_per_step: prompts per optimizer step (16 -> 128 completions per step).
        per_device_batch_size: completions per forward/backward micro-batch on each device. Gradient
            accumulation is derived: ``prompts_per_step * num_generations / (per_device * devices)``.
        beta: KL coefficient of the k3 estimator against the frozen reference, in the loss.
        loss_type: TRL loss aggregation; ``grpo`` (mean over sequences of per-sequence token means) is
            what Seg-Zero's micro-batch-1 token mean amounts to.
        epsilon / epsilon_high: PPO clip range (epsilon_high None = epsilon).
        scale_rewards: ``group`` divides advantages by the group std (Seg-Zero), ``batch`` or ``none``.
        num_iterations: optimisation passes per generated batch (1: fully on-policy).
        entropy_coef: entropy bonus subtracted from the loss (Seg-Zero inherits 1e-3 from veRL).
        temperature / top_p / top_k: sampling (top_k 0 = off).
        max_prompt_length: prompts (image tokens included) longer than this are reported and skipped.
        max_completion_length: generation limit in tokens.
        mask_truncated_completions: drop truncated completions from the loss (Seg-Zero: no).
    """

    num_generations: int = 8
    prompts_per_step: int = 16
    per_device_batch_size: int = 1
    beta: float = 5e-3
    kl_estimator: Literal["k3"] = "k3"
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = "grpo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = 1
    entropy_coef: float = 1e-3
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_prompt_length: int = 1300
    max_completion_length: int = 1300
    mask_truncated_completions: bool = False

    def __post_init__(self) -> None:
        _require(self.num_generations >= 2, "grpo.num_generations", "must be >= 2 (GRPO needs a group)")
        _require(self.prompts_per_step >= 1, "grpo.prompts_per_step", "must be >= 1")
        _require(self.per_device_batch_size >= 1, "grpo.per_device_batch_size", "must be >= 1")
        _require(self.beta >= 0, "grpo.beta", "must be >= 0")
        _require(0 < self.epsilon < 1, "grpo.epsilon", "must be in (0, 1)")
        _require(self.epsilon_high is None or self.epsilon_high > 0, "grpo.epsilon_high", "must be > 0 or null")
        _require(self.num_iterations >= 1, "grpo.num_iterations", "must be >= 1")
        _require(self.entropy_coef >= 0, "grpo.entropy_coef", "must be >= 0")
        _require(self.temperature > 0, "grpo.temperature", "must be > 0")
        _require(0 < self.top_p <= 1, "grpo.top_p", "must be in (0, 1]")
        _require(self.top_k >= 0, "grpo.top_k", "must be >= 0 (0 = off)")
        _require(self.max_prompt_length >= 1, "grpo.max_prompt_length", "must be >= 1")
        _require(self.max_completion_length >= 1, "grpo.max_completion_length", "must be >= 1")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a constant learning rate (Seg-Zero: lr 1e-6, no warmup, weight decay 0.01, clip 1.0)."""

    learning_rate: float = 1e-6
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        _require(self.learning_rate > 0, "optim.learning_rate", "must be > 0")
        _require(self.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        _require(self.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        _require(0 <= self.adam_beta1 < 1, "optim.adam_beta1", "must be in [0, 1)")
        _require(0 <= self.adam_beta2 < 1, "optim.adam_beta2", "must be in [0, 1)")
        _require(self.adam_epsilon > 0, "optim.adam_epsilon", "must be > 0")
        _require(self.max_grad_norm > 0, "optim.max_grad_norm", "must be > 0")


@dataclass(frozen=True)
class RunConfig:
    """Where and how long to train, precision, checkpoints.

    Attributes:
        output_dir: checkpoints (``checkpoint-<step>/``), logs and the final model (``final/``).
        max_steps: optimizer steps; None = ``num_epochs`` passes over the data (rows // prompts_per_step).
        num_epochs: used when max_steps is None.
        save_steps: save a resumable checkpoint every N steps (Seg-Zero: 50).
        save_total_limit: keep only the newest N checkpoints (None: all).
        logging_steps: log metrics every N steps.
        seed: seeds sampling order, generation and initialisation.
        device: ``auto`` (CUDA when available), ``cuda`` or ``cpu``.
        precision: ``auto`` (bf16 on CUDA, fp32 on CPU), ``bf16`` or ``fp32``.
        gradient_checkpointing: ``auto`` (on for CUDA), or true / false.
        resume: ``auto`` (continue from the newest checkpoint in output_dir if any), ``never``, or a
            checkpoint directory.
        report_to: experiment trackers for HF Trainer (e.g. ``[wandb]``); empty: none.
        save_final: write ``output_dir/final`` (HF checkpoint + training_meta.json + segzero_edge.json).
        rank_log: every process writes ``output_dir/ranks/rank-<R>.jsonl``: per optimizer step its rank,
            world size, the completions it generated and the ids of their prompts, and a sha256 of its
            weights. For checking a distributed setup (the hash reads every weight each step:
            leave it off for real models).
    """

    output_dir: str = "runs/seg_zero"
    max_steps: int | None = None
    num_epochs: int = 1
    save_steps: int = 50
    save_total_limit: int | None = None
    logging_steps: int = 1
    seed: int = 42
    device: Literal["auto", "cuda", "cpu"] = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    gradient_checkpointing: Literal["auto", "true", "false"] = "auto"
    resume: str = "auto"
    report_to: tuple[str, ...] = ()
    save_final: bool = True
    rank_log: bool = False

    def __post_init__(self) -> None:
        _require(bool(self.output_dir), "run.output_dir", "must not be empty")
        _require(self.max_steps is None or self.max_steps >= 1, "run.max_steps", "must be >= 1 or null")
        _require(self.num_epochs >= 1, "run.num_epochs", "must be >= 1")
        _require(self.save_steps >= 1, "run.save_steps", "must be >= 1")
        _require(
            self.save_total_limit is None or self.save_total_limit >= 1,
            "run.save_total_limit",
            "must be >= 1 or null",
        )
        _require(self.logging_steps >= 1, "run.logging_steps", "must be >= 1")
        _require(bool(self.resume), "run.resume", "use auto, never or a checkpoint directory")


@dataclass(frozen=True)
class VLLMConfig:
    """vLLM rollouts (CUDA only; TRL ``use_vllm``). Seg-Zero generated with vLLM (TP 2, memory 0.5).

    Attributes:
        enabled: generate with vLLM instead of ``model.generate``.
        mode: ``colocate`` (inside the training processes, sharing their GPUs) or ``server``
            (a separate ``trl vllm-serve`` process).
        gpu_memory_utilization: colocate share of each GPU's memory.
        tensor_parallel_size: colocate tensor parallelism.
        enable_sleep_mode: offload vLLM weights / KV cache during the optimizer step.
        importance_sampling_correction: TRL's vLLM-vs-trainer log-prob correction (Seg-Zero had none).
        server_base_url: for ``server`` mode.
    """

    enabled: bool = False
    mode: Literal["colocate", "server"] = "colocate"
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    enable_sleep_mode: bool = True
    importance_sampling_correction: bool = False
    server_base_url: str | None = None

    def __post_init__(self) -> None:
        _require(0 < self.gpu_memory_utilization <= 1, "vllm.gpu_memory_utilization", "must be in (0, 1]")
        _require(self.tensor_parallel_size >= 1, "vllm.tensor_parallel_size", "must be >= 1")


@dataclass(frozen=True)
class TrainConfig:
    """The whole training configuration (one section per concern)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOSection = field(default_factory=GRPOSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)

    def __post_init__(self) -> None:
        if self.model.family is not None:
            check_family_rewards(self.model.family, self.rewards.set)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), e.g. for YAML or training_meta.json."""
        return _plain(dataclasses.asdict(self))

    def replace(self, overrides: dict[str, Any] | list[str]) -> TrainConfig:
        """A copy with dotted-key overrides applied (``{"grpo.beta": 0.01}`` or ``["grpo.beta=0.01"]``)."""
        data = self.to_dict()
        items = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides)
        for key, value in items.items():
            section, _, name = key.partition(".")
            if section not in data or not name:
                _unknown(key, [f"{s}.{k}" for s, sec in data.items() for k in sec])
            data[section][name] = value
        return config_from_dict(data)


# --------------------------------------------------------------------------------------------------
# Loading, overrides, type checking
# --------------------------------------------------------------------------------------------------

_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(TrainConfig)[f.name] for f in dataclasses.fields(TrainConfig)
}


def check_family_rewards(family: str, reward_set: str) -> None:
    """The ``vision_reasoner`` family trains with the ``vision_reasoner`` rewards, and only it does."""
    if (family == VISION_REASONER) != (reward_set == "vision_reasoner"):
        raise ConfigError(
            f"model.family {family} does not go with rewards.set {reward_set}",
            hint="use rewards.set=vision_reasoner with model.family=vision_reasoner, and a Seg-Zero set "
            "(strict, soft, robust) with seg_zero",
        )


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}", hint="fix the value in the YAML file or the key=value override")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _unknown(key: str, known: list[str]) -> typing.NoReturn:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(known)
    raise ConfigError(f"unknown config key {key!r}", hint=hint)


def _coerce(key: str, tp: Any, value: Any) -> Any:
    """``value`` converted to the field type ``tp``; strings (from the command line) are parsed."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() in ("null", "none"))):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, inner[0], value)
    if origin is Literal:
        choices = get_args(tp)
        if isinstance(value, bool) and "true" in choices:  # YAML true/false for auto|true|false fields
            value = "true" if value else "false"
        if value not in choices:
            raise ConfigError(
                f"{key}: expected one of {list(choices)}, got {value!r}",
                hint="fix the value in the YAML file or the override",
            )
        return value
    if origin is tuple:
        if isinstance(value, str):
            import yaml

            parsed = yaml.safe_load(value) if value.strip() else []
            value = parsed if isinstance(parsed, list) else [parsed]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}", hint="write it as [a, b]")
        return tuple(_coerce(key, get_args(tp)[0], v) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ConfigError(f"{key}: expected true or false, got {value!r}", hint="write true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}", hint="write a whole number, e.g. 16")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a float, got {value!r}", hint="write a number, e.g. 5e-3")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}", hint="quote the value")
    raise ConfigError(f"{key}: unsupported field type {tp!r}")  # pragma: no cover - programming error


def _build_section(name: str, cls: type, values: Any) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, got {values!r}", hint=f"write `{name}:` then keys")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            _unknown(f"{name}.{key}", [f"{name}.{f}" for f in fields])
        kwargs[key] = _coerce(f"{name}.{key}", hints[key], value)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """A validated ``TrainConfig`` from a nested dict (unknown keys and wrong types are errors)."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"a training config must be a mapping of sections, got {type(data).__name__}",
            hint="see segzero_edge/training/recipes/seg_zero_3b.yaml",
        )
    for section in data:
        if section not in _SECTIONS:
            _unknown(str(section), list(_SECTIONS))
    return TrainConfig(**{s: _build_section(s, cls, data.get(s)) for s, cls in _SECTIONS.items()})


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["a.b=1", "c.d=x"]`` -> ``{"a.b": "1", "c.d": "x"}`` (values stay strings until coerced)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"bad override {item!r}", hint="write overrides as section.key=value, e.g. grpo.beta=0.01"
            )
        out[key.strip()] = value
    return out


def recipe_names() -> list[str]:
    """Names of the shipped recipes (``seg_zero_3b``, ``seg_zero_7b``)."""
    folder = resources.files(__package__) / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name: str) -> Path:
    """A config file path, or the shipped recipe of that name (``seg_zero_3b`` or ``seg_zero_3b.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    stem = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if str(path.parent) in (".", "") and stem in recipe_names():
        return Path(str(resources.files(__package__) / "recipes" / f"{stem}.yaml"))
    raise ConfigError(
        f"config file {name!r} not found",
        hint=f"give a YAML path or a shipped recipe name: {', '.join(recipe_names())}",
    )


def load_config(path: str | Path, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Load a YAML training config (or a shipped recipe by name) and apply overrides."""
    import yaml

    file = resolve_config_path(str(path))
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}", hint="fix the YAML syntax") from exc
    cfg = config_from_dict(data)
    return cfg.replace(overrides) if overrides else cfg


def dump_config(cfg: TrainConfig) -> str:
    """The config as YAML (round-trips through ``load_config``)."""
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
