"""The Seg-Zero recipe on TRL's ``GRPOTrainer`` (trl pinned to 1.16.0: its defaults move between releases).

``grpo_kwargs`` / ``build_grpo_args`` map a ``TrainConfig`` to a ``GRPOConfig`` with every option that
affects the algorithm set explicitly (none is left to TRL's or transformers' defaults);
``build_trainer`` loads the processor and data and returns the trainer; ``train`` runs it, resumes from
the newest complete checkpoint, and writes the final checkpoint with ``training_meta.json`` and
``segzero_edge.json``.

Seg-Zero (veRL) -> TRL, and the differences we accept (docs/training.md has the full table):

* KL: k3 estimator in the loss with ``beta`` 5e-3, frozen reference = the initial checkpoint. TRL does
  not clamp k3 to [-10, 10] as veRL does, and its bias-corrected KL is turned off
  (``use_bias_correction_kl=False``) so the KL term is Seg-Zero's plain k3.
* Loss aggregation ``grpo``: mean over sequences of per-sequence token means == veRL's token mean over
  micro-batches of one sequence, averaged over accumulation steps and ranks.
* Advantages: (r - mean) / (std + eps) per group with the unbiased std; TRL's eps is 1e-4 (veRL 1e-6).
* Entropy bonus: TRL ``entropy_coef`` (present in trl 1.16: ``loss - coef * token-mean entropy`` per
  micro-batch), 1e-3 as Seg-Zero inherits from veRL. Identical to veRL at micro-batch 1.
* One optimizer step per 16 prompts x 8 samples, fully on-policy (``num_iterations`` 1,
  ``steps_per_generation`` = gradient accumulation), so the ratio is 1 and clipping is inactive, as in
  Seg-Zero. Prompts longer than ``max_prompt_length`` are skipped and reported (TRL 1.16 has no prompt
  truncation; truncating would cut image tokens).
* Steps: ``rows // 16`` per epoch; Seg-Zero's loop stops one update early (an off-by-one we do not copy).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from segzero_edge.errors import ConfigError, TrainingError
from segzero_edge.prompt import (
    SEG_ZERO,
    num_image_tokens,
    read_checkpoint_meta,
    render_chat,
    validate_input_size,
)
from segzero_edge.reference.qwen import QWEN25VL_CHAT_TEMPLATE

from .config import TrainConfig, check_family_rewards
from .data import DataReport, load_seg_zero_dataset
from .rewards import reward_functions
from .trainer import trainer_class

logger = logging.getLogger(__name__)

#: Tokens the policy must never sample: a generated vision token breaks the next forward pass
#: ("Image features and image tokens do not match").
VISION_SPECIAL_TOKENS = (
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
FINAL_DIR = "final"


# --------------------------------------------------------------------------------------------------
# Model files and processor
# --------------------------------------------------------------------------------------------------


def resolve_model_path(name_or_path: str) -> Path:
    """A local checkpoint directory for ``model.name_or_path`` (Hub ids are downloaded once, cached)."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    if path.exists() or name_or_path.startswith((".", "/")):
        raise ConfigError(
            f"model.name_or_path: {name_or_path} is not a checkpoint directory",
            hint="give an HF Qwen2.5-VL checkpoint directory or a Hub id",
        )
    from huggingface_hub import snapshot_download

    logger.info("downloading %s from the Hugging Face Hub", name_or_path)
    return Path(snapshot_download(name_or_path))


def resolve_input_size(cfg: TrainConfig, model_path: Path) -> int:
    """``model.input_size``, else the checkpoint's ``segzero_edge.json`` (840 for official checkpoints)."""
    from_ckpt = read_checkpoint_meta(model_path)["input_size"]
    if cfg.model.input_size is None:
        return from_ckpt
    if cfg.model.input_size != from_ckpt:
        logger.warning(
            "model.input_size=%d differs from the checkpoint's %d: training at %d",
            cfg.model.input_size,
            from_ckpt,
            cfg.model.input_size,
        )
    return validate_input_size(cfg.model.input_size)


def resolve_family(cfg: TrainConfig, model_path: Path) -> str:
    """``model.family``, else the checkpoint's ``segzero_edge.json`` (``seg_zero`` when absent); checked
    against ``rewards.set``."""
    family = cfg.model.family or read_checkpoint_meta(model_path)["family"]
    check_family_rewards(family, cfg.rewards.set)
    return family


def load_processor(model_path: Path, input_size: int, family: str = SEG_ZERO) -> Any:
    """The checkpoint's Qwen2.5-VL processor (no torchvision needed), pinned to ``input_size`` pixels.

    The image processor's pixel range is set to exactly ``input_size ** 2`` so an ``S x S`` image is
    never resized again (``(S/28)**2`` image tokens), and the chat template is checked against the
    prompt contract.
    """
    from segzero_edge.reference.qwen import load_qwen_processor

    processor = load_qwen_processor(model_path)
    ip = processor.image_processor
    pixels = input_size * input_size
    ip.size = (
        type(ip.size)(**{"shortest_edge": pixels, "longest_edge": pixels})
        if not isinstance(ip.size, dict)
        else {"shortest_edge": pixels, "longest_edge": pixels}
    )
    for attr in ("min_pixels", "max_pixels"):
        if hasattr(ip, attr):
            setattr(ip, attr, pixels)
    check_prompt_contract(processor, family=family)
    return processor


def check_prompt_contract(
    processor: Any, question: str = "the cup the robot should pick up", *, family: str = SEG_ZERO
) -> None:
    """Fail when the processor's chat template does not render ``segzero_edge.prompt.render_chat``."""
    from trl.data_utils import prepare_multimodal_messages

    from .data import training_prompt

    messages = prepare_multimodal_messages(training_prompt(question, family), images=[None])
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    if rendered != render_chat(question, family=family):
        if processor.chat_template != QWEN25VL_CHAT_TEMPLATE:
            logger.warning("the checkpoint's chat template does not render the Seg-Zero prompt: using Qwen2.5-VL's")
            processor.chat_template = QWEN25VL_CHAT_TEMPLATE
            return check_prompt_contract(processor, question, family=family)
        raise TrainingError(
            "the processor renders the prompt differently from segzero_edge.prompt.render_chat",
            hint="use a Qwen2.5-VL checkpoint with the stock chat template",
        )
    return None


def vision_token_ids(tokenizer: Any) -> list[int]:
    ids = [tokenizer.convert_tokens_to_ids(t) for t in VISION_SPECIAL_TOKENS]
    return sorted({i for i in ids if i is not None and i != tokenizer.unk_token_id})


def filter_long_prompts(
    dataset: Any,
    tokenizer: Any,
    input_size: int,
    max_prompt_length: int,
    report: DataReport,
    family: str = SEG_ZERO,
) -> Any:
    """Skip (and report) rows whose prompt, image tokens included, exceeds ``max_prompt_length``."""
    texts = [render_chat(p if isinstance(p, str) else "", family=family) for p in dataset["problem"]]
    lengths = [len(ids) - 1 + num_image_tokens(input_size) for ids in tokenizer(texts)["input_ids"]]
    keep = [i for i, n in enumerate(lengths) if n <= max_prompt_length]
    if len(keep) < len(lengths):
        ids = dataset["id"] if "id" in dataset.column_names else [str(i) for i in range(len(lengths))]
        for i, n in enumerate(lengths):
            if n > max_prompt_length:
                report.skip(f"prompt longer than grpo.max_prompt_length={max_prompt_length} tokens", ids[i])
        report.kept = len(keep)
        logger.warning("training data: %s", report.summary())
        if not keep:
            raise TrainingError(
                "every prompt is longer than grpo.max_prompt_length",
                hint="raise grpo.max_prompt_length or use a smaller model.input_size",
            )
        dataset = dataset.select(keep)
    return dataset


# --------------------------------------------------------------------------------------------------
# GRPOConfig
# --------------------------------------------------------------------------------------------------


def resolve_device(cfg: TrainConfig) -> str:
    import torch

    if cfg.run.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device=cuda but no CUDA device is available", hint="use run.device=auto or cpu")
    if cfg.run.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.run.device


def gradient_accumulation(cfg: TrainConfig, world_size: int) -> int:
    """Micro-batches per optimizer step so that one step sees ``prompts_per_step * num_generations``."""
    g = cfg.grpo
    per_step = g.prompts_per_step * g.num_generations
    per_micro = g.per_device_batch_size * world_size
    if per_step % per_micro:
        raise ConfigError(
            f"grpo.prompts_per_step x grpo.num_generations = {per_step} completions per step is not "
            f"divisible "
            f"by grpo.per_device_batch_size x devices = {g.per_device_batch_size} x {world_size}",
            hint="choose grpo.per_device_batch_size so that it divides the completions per step per device",
        )
    return per_step // per_micro


def grpo_kwargs(
    cfg: TrainConfig,
    *,
    num_rows: int,
    tokenizer: Any,
    world_size: int | None = None,
    device: str | None = None,
) -> Any:
    """The ``trl.GRPOConfig`` keyword arguments of ``cfg``: every algorithm option, explicitly.

    Args:
        cfg: the training config.
        num_rows: usable training rows (sets ``max_steps`` when ``run.max_steps`` is null).
        tokenizer: the policy's tokenizer (ids of the vision tokens to suppress).
        world_size: training processes (default: accelerate's).
        device: ``cuda`` or ``cpu`` (default: from ``run.device``).
    """
    from .launch import distributed_state

    device = device or resolve_device(cfg)
    world_size = world_size or distributed_state(cfg).num_processes
    g, o, r, v = cfg.grpo, cfg.optim, cfg.run, cfg.vllm
    accum = gradient_accumulation(cfg, world_size)
    max_steps = r.max_steps or r.num_epochs * (num_rows // g.prompts_per_step)
    if max_steps < 1:
        raise TrainingError(
            f"{num_rows} usable rows are fewer than grpo.prompts_per_step={g.prompts_per_step}",
            hint="add data, lower grpo.prompts_per_step, or set run.max_steps",
        )
    if v.enabled and device != "cuda":
        raise ConfigError("vllm.enabled=true needs CUDA", hint="set vllm.enabled=false on CPU")
    bf16 = r.precision == "bf16" or (r.precision == "auto" and device == "cuda")
    checkpointing = r.gradient_checkpointing == "true" or (r.gradient_checkpointing == "auto" and device == "cuda")
    suppress = vision_token_ids(tokenizer)
    generation_kwargs = {"logit_bias": dict.fromkeys(suppress, -100.0)} if v.enabled else {"suppress_tokens": suppress}
    return dict(
        output_dir=r.output_dir,
        # batch geometry: one optimizer step per prompts_per_step x num_generations completions
        per_device_train_batch_size=g.per_device_batch_size,
        gradient_accumulation_steps=accum,
        steps_per_generation=accum,
        num_generations=g.num_generations,
        num_iterations=g.num_iterations,
        shuffle_dataset=True,
        max_steps=max_steps,
        num_train_epochs=r.num_epochs,
        seed=r.seed,
        data_seed=r.seed,
        # generation
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        top_p=g.top_p,
        top_k=g.top_k,
        min_p=None,
        repetition_penalty=1.0,
        generation_kwargs=generation_kwargs,
        cache_implementation=None,
        pad_to_multiple_of=None,
        # loss
        loss_type=g.loss_type,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        delta=None,
        importance_sampling_level="token",
        scale_rewards=g.scale_rewards,
        multi_objective_aggregation="sum_then_normalize",
        reward_weights=[1.0] * 5,
        mask_truncated_completions=g.mask_truncated_completions,
        top_entropy_quantile=1.0,
        entropy_coef=g.entropy_coef,
        use_adaptive_entropy=False,
        use_bias_correction_kl=False,
        off_policy_mask_threshold=None,
        sync_ref_model=False,
        disable_dropout=True,
        cast_lm_head_to_fp32=False,
        # optimizer
        optim="adamw_torch",
        learning_rate=o.learning_rate,
        lr_scheduler_type=o.lr_scheduler,
        warmup_steps=o.warmup_steps,
        weight_decay=o.weight_decay,
        adam_beta1=o.adam_beta1,
        adam_beta2=o.adam_beta2,
        adam_epsilon=o.adam_epsilon,
        max_grad_norm=o.max_grad_norm,
        # precision and memory
        use_cpu=device == "cpu",
        bf16=bf16,
        fp16=False,
        tf32=None,
        activation_checkpointing=checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None,
        model_init_kwargs={
            "dtype": "float32",
            "attn_implementation": cfg.model.attn_implementation,
            "device_map": None,
        },
        ddp_find_unused_parameters=True,
        use_liger_kernel=False,
        torch_compile=False,
        # vLLM rollouts
        use_vllm=v.enabled,
        vllm_mode=v.mode,
        vllm_gpu_memory_utilization=v.gpu_memory_utilization,
        vllm_tensor_parallel_size=v.tensor_parallel_size,
        vllm_enable_sleep_mode=v.enable_sleep_mode,
        vllm_importance_sampling_correction=v.importance_sampling_correction,
        vllm_max_model_length=g.max_prompt_length + g.max_completion_length,
        vllm_server_base_url=v.server_base_url,
        # data
        remove_unused_columns=False,
        dataloader_num_workers=0,
        # logging, progress, checkpoints
        logging_strategy="steps",
        logging_steps=r.logging_steps,
        logging_first_step=True,
        log_completions=False,
        disable_tqdm=False,
        report_to=list(r.report_to) or "none",
        eval_strategy="no",
        save_strategy="steps",
        save_steps=r.save_steps,
        save_total_limit=r.save_total_limit,
        save_only_model=False,
        ignore_data_skip=False,
    )


def build_grpo_args(cfg: TrainConfig, **kwargs: Any) -> Any:
    """The ``trl.GRPOConfig`` of ``cfg`` (see ``grpo_kwargs``)."""
    from trl import GRPOConfig

    return GRPOConfig(**grpo_kwargs(cfg, **kwargs))


# --------------------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainerBundle:
    """What ``build_trainer`` made: the trainer and the facts ``train`` records in the final checkpoint."""

    trainer: Any
    config: TrainConfig
    model_path: Path
    input_size: int
    data_report: DataReport
    family: str = SEG_ZERO


def build_trainer(
    cfg: TrainConfig,
    *,
    reward_funcs: list[Any] | None = None,
    callbacks: list[Any] | None = None,
    cache_dir: str | None = None,
) -> TrainerBundle:
    """A ready-to-run ``GRPOTrainer`` for ``cfg``.

    Args:
        cfg: the training config.
        reward_funcs: reward functions instead of the configured Seg-Zero set (tests, experiments);
            each gets weight 1.0 and is logged as ``rewards/<name>/mean``.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        cache_dir: ``datasets`` cache for parquet / Hub data.
    """
    from .callbacks import MetricsLogger, RankLog
    from .launch import check_sharding, distributed_state

    model_path = resolve_model_path(cfg.model.name_or_path)
    input_size = resolve_input_size(cfg, model_path)
    family = resolve_family(cfg, model_path)
    processor = load_processor(model_path, input_size, family)
    with distributed_state(cfg).main_process_first():
        dataset, report = load_seg_zero_dataset(
            cfg.data.train,
            input_size=input_size,
            max_rows=cfg.data.max_rows,
            skip_bad_rows=cfg.data.skip_bad_rows,
            cache_dir=cache_dir,
            family=family,
        )
    dataset = filter_long_prompts(dataset, processor.tokenizer, input_size, cfg.grpo.max_prompt_length, report, family)
    if reward_funcs is None:
        reward_funcs = reward_functions(cfg.rewards.set, input_size=input_size, thresholds=cfg.rewards.thresholds)
    funcs = list(reward_funcs)
    own_callbacks: list[Any] = [MetricsLogger(cfg.run.output_dir)]
    if cfg.run.rank_log:
        rank_log = RankLog(cfg.run.output_dir)
        funcs[0] = rank_log.count(funcs[0])
        own_callbacks.append(rank_log)
    args = build_grpo_args(cfg, num_rows=len(dataset), tokenizer=processor.tokenizer)
    args.reward_weights = [1.0] * len(funcs)
    trainer = trainer_class()(
        model=str(model_path),
        reward_funcs=funcs,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[*own_callbacks, *(callbacks or [])],
    )
    check_sharding(trainer)
    return TrainerBundle(
        trainer=trainer,
        config=cfg,
        model_path=model_path,
        input_size=input_size,
        data_report=report,
        family=family,
    )


def train(cfg: TrainConfig, **build_kwargs: Any) -> Path | None:
    """Train ``cfg`` (resuming per ``run.resume``) and write the final checkpoint.

    Returns:
        The final checkpoint directory (``output_dir/final``), or None when ``run.save_final`` is false.
    """
    from .checkpoints import find_resume_checkpoint, write_training_meta

    out = Path(cfg.run.output_dir)
    resume = find_resume_checkpoint(out, cfg.run.resume)
    bundle = build_trainer(cfg, **build_kwargs)
    trainer = bundle.trainer
    if resume:
        logger.info("resuming from %s", resume)
    result = trainer.train(resume_from_checkpoint=resume)
    if not cfg.run.save_final:
        return None
    final = out / FINAL_DIR
    trainer.save_model(str(final))
    if trainer.args.should_save:
        args = trainer.args
        model = dataclasses.replace(cfg.model, input_size=bundle.input_size, family=bundle.family)
        resolved = dataclasses.replace(cfg, model=model)
        write_training_meta(
            final,
            config=resolved.to_dict(),
            input_size=bundle.input_size,
            family=bundle.family,
            extra={
                "base_model": str(bundle.model_path),
                "global_step": trainer.state.global_step,
                "resumed_from": resume,
                "train_loss": getattr(result, "training_loss", None),
                "world_size": args.world_size,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "data": bundle.data_report.to_dict(),
                "trl_args": {k: getattr(args, k) for k in TRL_ARGS_RECORDED},
            },
        )
        logger.info("final checkpoint: %s (step %d)", final, trainer.state.global_step)
    return final


#: GRPOConfig fields copied into training_meta.json (what decides the algorithm).
TRL_ARGS_RECORDED = (
    "loss_type",
    "beta",
    "epsilon",
    "epsilon_high",
    "scale_rewards",
    "num_generations",
    "num_iterations",
    "steps_per_generation",
    "per_device_train_batch_size",
    "temperature",
    "top_p",
    "top_k",
    "max_completion_length",
    "entropy_coef",
    "use_bias_correction_kl",
    "learning_rate",
    "lr_scheduler_type",
    "weight_decay",
    "max_grad_norm",
    "bf16",
    "activation_checkpointing",
    "use_vllm",
    "vllm_mode",
    "max_steps",
)
