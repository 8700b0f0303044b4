"""The small world of issue 9: seeded scenes, fixed splits, and tiny models trained on them.

The splits are pure functions of their seeds (``training.scenes.generate_samples``); every module of
this package (dataset writer, tiny SAM2 training, tiny reasoner SFT + GRPO, accuracy tables) takes them
from here, so a split is defined exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    """A split: ``count`` (scene, query) samples from ``generate_samples(seed, count, SCENE_SIZE)``."""

    name: str
    seed: int
    count: int


#: Side of the square scene images, in pixels.
SCENE_SIZE = 224

SPLITS: dict[str, Split] = {
    "train": Split("train", seed=91_000, count=6000),
    "val": Split("val", seed=92_000, count=200),
    "test": Split("test", seed=93_000, count=200),
}
