"""``segzero-edge train``: GRPO training with the Seg-Zero recipe, and training-data preparation.

Two forms share the command (the first word decides)::

    segzero-edge train CONFIG.yaml [--dry-run] [--resume auto|never|DIR] [section.key=value ...]
    segzero-edge train prepare-data {index,refcoco,reasonseg} SOURCE_DIR OUT_DIR [options]
    segzero-edge train list

``CONFIG.yaml`` is a file or the name of a shipped recipe (``seg_zero_3b``, ``seg_zero_7b``). Multi-GPU
runs go through accelerate: ``accelerate launch --config_file FSDP.yaml -m segzero_edge.training CONFIG``
(``segzero-edge train list`` prints the shipped accelerate configs).
"""

from __future__ import annotations

import argparse
import logging
import os
from importlib import resources

from segzero_edge.cli.base import Command
from segzero_edge.errors import ConfigError

from .launch import add_launch_arguments

logger = logging.getLogger(__name__)

SUBCOMMANDS = ("prepare-data", "list")


def run_parser(prog: str = "segzero-edge train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a Seg-Zero reasoner with GRPO (TRL GRPOTrainer, Seg-Zero recipe).",
        epilog="overrides: dotted keys of the config, type-checked, e.g.\n"
        "  grpo.beta=0.01 run.max_steps=20 data.train=/data/refcocog_9k vllm.enabled=true\n"
        "sections: model, data, rewards, grpo, optim, run, vllm (see docs/training.md)",
    )
    p.add_argument("config", help="YAML config file, or a shipped recipe name (seg_zero_3b, seg_zero_7b)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and launch plan (processes, sharding, global batch, rollouts per step, "
        "memory estimate), check the data and the model files; no model is loaded, nothing is trained",
    )
    add_launch_arguments(p)
    p.add_argument(
        "--resume",
        default=None,
        metavar="auto|never|DIR",
        help="same as run.resume=...: continue from the newest complete checkpoint (auto)",
    )
    return p


def prepare_parser(prog: str = "segzero-edge train prepare-data") -> argparse.ArgumentParser:
    from . import prepare

    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, description=prepare.__doc__
    )
    prepare.add_arguments(p)
    return p


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = (
        "segzero-edge train CONFIG.yaml [--dry-run] [--resume R] [section.key=value ...]\n"
        "       segzero-edge train prepare-data {index,refcoco,reasonseg} SOURCE_DIR OUT_DIR [...]\n"
        "       segzero-edge train list"
    )
    parser.epilog = (
        "forms:\n"
        "  CONFIG.yaml     train; CONFIG is a YAML file or a shipped recipe (seg_zero_3b, seg_zero_7b).\n"
        "                  Options: --dry-run, --resume auto|never|DIR, then section.key=value overrides\n"
        "                  (e.g. grpo.beta=0.01 run.max_steps=20); `segzero-edge train CONFIG --help`.\n"
        "  prepare-data    convert images + masks + expressions (index JSON, RefCOCO or ReasonSeg layout)\n"
        "                  into the Seg-Zero dataset layout. `segzero-edge train prepare-data --help`.\n"
        "  list            print the shipped recipes and accelerate configs (FSDP, DeepSpeed ZeRO-3).\n"
        "multi-GPU: accelerate launch --config_file <fsdp.yaml> -m segzero_edge.training CONFIG [...]"
    )
    parser.add_argument("target", metavar="CONFIG|prepare-data|list", help="what to do (see the forms below)")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def list_shipped() -> str:
    from .config import recipe_names

    root = resources.files(__package__)
    lines = ["recipes (segzero-edge train NAME):"]
    lines += [f"  {n:<14} {root / 'recipes' / (n + '.yaml')}" for n in recipe_names()]
    lines.append("accelerate configs (accelerate launch --config_file PATH -m segzero_edge.training ...):")
    lines += [
        f"  {p.name:<22} {p}"
        for p in sorted((root / "accelerate").iterdir(), key=lambda p: p.name)
        if p.name.endswith(".yaml")
    ]
    return "\n".join(lines)


def run_training(args: argparse.Namespace) -> int:
    from .config import dump_config, load_config

    overrides = list(args.overrides)
    if args.resume is not None:
        overrides.append(f"run.resume={args.resume}")
    cfg = load_config(args.config, overrides)
    if args.dry_run:
        return dry_run(cfg, accelerate_config=args.accelerate_config, processes=args.processes)
    if args.accelerate_config is not None or args.processes is not None:
        raise ConfigError(
            "--accelerate-config and --processes describe a launch for --dry-run",
            hint="launch with `accelerate launch --config_file ...` or `torchrun --nproc_per_node N`",
        )
    from .grpo import train

    logger.info("training config:\n%s", dump_config(cfg))
    final = train(cfg)
    if final is not None and int(os.environ.get("RANK", "0")) == 0:  # once, not once per process
        print(f"final checkpoint: {final}")
    return 0


def dry_run(cfg, *, accelerate_config: str | None = None, processes: int | None = None) -> int:
    """Print the resolved config and the launch plan, load the processor of a local checkpoint (not the
    model) and check the data."""
    from pathlib import Path

    from segzero_edge.prompt import SEG_ZERO, SEG_ZERO_INPUT_SIZE

    from .config import check_family_rewards, dump_config
    from .data import load_seg_zero_dataset
    from .grpo import load_processor, resolve_family, resolve_input_size
    from .launch import check_accelerate_config, plan_run

    print(dump_config(cfg), end="")
    launch = check_accelerate_config(accelerate_config) if accelerate_config else None
    plan = plan_run(cfg, launch, processes)
    print("# launch plan" + (f" ({launch.path})" if launch else ""))
    for line in plan.lines():
        print(f"#   {line}")
    path = Path(cfg.model.name_or_path)
    if path.is_dir():
        size = resolve_input_size(cfg, path)
        family = resolve_family(cfg, path)
        load_processor(path, size, family)
        model_note = f"model {path}: processor and prompt contract OK, input size {size}, family {family}"
    else:  # a Hub id: not downloaded by a dry run
        size = cfg.model.input_size or SEG_ZERO_INPUT_SIZE
        family = cfg.model.family or SEG_ZERO
        check_family_rewards(family, cfg.rewards.set)
        model_note = f"model {cfg.model.name_or_path}: Hub id, not downloaded in a dry run; input size {size}"
    _, report = load_seg_zero_dataset(
        cfg.data.train,
        input_size=size,
        max_rows=cfg.data.max_rows,
        skip_bad_rows=cfg.data.skip_bad_rows,
        family=family,
    )
    print(f"# {model_note}\n# data {cfg.data.train}: {report.summary()}")
    return 0


def _run(args: argparse.Namespace) -> int:
    target, rest = args.target, list(args.rest)
    if target == "prepare-data":
        from . import prepare

        return prepare.run(prepare_parser().parse_args(rest))
    if target == "list":
        print(list_shipped())
        return 0
    return run_training(run_parser().parse_intermixed_args([target, *rest]))


COMMAND = Command(
    name="train",
    add_arguments=_add_arguments,
    run=_run,
    description="GRPO training of the reasoning model with the Seg-Zero recipe (TRL), and data preparation.",
)


def main(argv: list[str] | None = None) -> int:
    """``python -m segzero_edge.training CONFIG [overrides]`` (what ``accelerate launch -m`` runs)."""
    import sys

    from segzero_edge.errors import SegZeroError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m segzero_edge.training")
    _add_arguments(parser)
    try:
        return _run(parser.parse_args(argv))
    except SegZeroError as exc:
        print(f"segzero_edge.training: error: {exc}", file=sys.stderr)
        return 1
    finally:
        _close_process_group()


def _close_process_group() -> None:
    """Leave the distributed process group before the interpreter exits: a gloo group still alive at exit
    aborts the process ("terminate called without an active exception"), and torchrun then reports a
    finished run as failed."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
