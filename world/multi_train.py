"""``python -m segzero_edge.world train-reasoner-multi``: the world's VisionReasoner-family reasoner.

A continued fine-tune of the shipped single-object reasoner (``world/assets/reasoner``, left as it is) on the
multi-object train split (``world.multi``; every fourth sample a single-object query answered as a list of
one): SFT with VisionReasoner's prompt and answer lists (no auxiliary losses: the shipped model's vision
tokens already carry the grounding), then GRPO with VisionReasoner's rewards
(``world/recipes/world_reasoner_multi.yaml``). Seeded and resumable like ``train-reasoner``; the result is
``OUT/grpo/final`` (its ``segzero_edge.json`` says ``vision_reasoner``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from segzero_edge.errors import SegZeroError

from . import ASSETS

logger = logging.getLogger(__name__)

RECIPE = Path(__file__).resolve().parent / "recipes" / "world_reasoner_multi.yaml"
#: The shipped multi-object recipe: SFT_STEPS x SFT_BATCH rows (about 8 epochs of the 3000 train samples),
#: then GRPO_STEPS GRPO steps.
SFT_STEPS = 3000
SFT_BATCH = 8
SFT_LR = 1e-3
GRPO_STEPS = 300


def train_multi_reasoner(
    out: Path,
    *,
    init: Path = ASSETS / "reasoner",
    sft_steps: int = SFT_STEPS,
    sft_lr: float = SFT_LR,
    grpo_steps: int = GRPO_STEPS,
    threads: int = 1,
    seed: int = 0,
    counts: dict[str, int] | None = None,
    overrides: tuple[str, ...] = (),
) -> Path:
    """data -> SFT -> GRPO under ``out``; returns the final checkpoint directory."""
    import torch

    from segzero_edge.prompt import VISION_REASONER, read_checkpoint_meta
    from segzero_edge.training.config import load_config
    from segzero_edge.training.grpo import train as grpo_train

    from .multi import VR_DIR, write_multi_dataset
    from .sft import SFTConfig, run_sft

    torch.set_num_threads(threads)
    out = Path(out)
    times: dict[str, float] = {}
    input_size = read_checkpoint_meta(init)["input_size"]
    data = out / "data"
    t0 = time.perf_counter()
    marker = data / "world_meta.json"
    want = {"input_size": input_size, "counts": counts or {}}
    if not marker.exists() or json.loads(marker.read_text()) != want:
        write_multi_dataset(data, input_size=input_size, counts=counts)
        marker.write_text(json.dumps(want) + "\n")
    times["dataset_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cfg = SFTConfig(
        steps=sft_steps,
        batch_size=SFT_BATCH,
        learning_rate=sft_lr,
        warmup_steps=min(50, sft_steps // 10),
        seed=seed,
        threads=threads,
    )
    sft = run_sft(init, out / "sft", data / VR_DIR, data / "multi_train", cfg, family=VISION_REASONER)
    times["sft_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    grpo_cfg = load_config(
        RECIPE,
        [
            f"model.name_or_path={sft['final']}",
            f"data.train={data / VR_DIR}",
            f"run.output_dir={out / 'grpo'}",
            f"run.seed={seed + 42}",
            f"run.max_steps={grpo_steps}",
            *overrides,
        ],
    )
    final = grpo_train(grpo_cfg)
    times["grpo_s"] = time.perf_counter() - t0
    (out / "times.json").write_text(json.dumps(times, indent=2) + "\n")
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m segzero_edge.world train-reasoner-multi",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--out", required=True, type=Path, help="run folder (data/, sft/, grpo/; the model is grpo/final)")
    p.add_argument("--init", type=Path, default=ASSETS / "reasoner", help="checkpoint to start from (the shipped one)")
    p.add_argument("--sft-steps", type=int, default=SFT_STEPS, help=f"SFT steps of {SFT_BATCH} rows")
    p.add_argument("--sft-lr", type=float, default=SFT_LR, help="peak SFT learning rate")
    p.add_argument("--grpo-steps", type=int, default=GRPO_STEPS, help="GRPO steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="GRPO recipe overrides, section.key=value")
    args = p.parse_args(argv)
    try:
        final = train_multi_reasoner(
            args.out,
            init=args.init,
            sft_steps=args.sft_steps,
            sft_lr=args.sft_lr,
            grpo_steps=args.grpo_steps,
            threads=args.threads,
            seed=args.seed,
            overrides=tuple(args.overrides),
        )
    except SegZeroError as exc:
        print(f"segzero_edge.world train-reasoner-multi: error: {exc}")
        return 1
    print(f"final checkpoint: {final}")
    return 0
