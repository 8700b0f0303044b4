"""The small world: seeded scenes, fixed splits, tiny models trained on them, and the demo.

An example built on the SDK (runtime, export, training, the torch side); nothing outside this package
imports it. The splits are pure functions of their seeds (``scenes.generate_samples``); every module of
this package (dataset writer, tiny SAM2 training, tiny reasoner SFT + GRPO, accuracy tables) takes them
from here, so a split is defined exactly once. The trained models and the demo scene ship in ``assets/``
(inside the wheel too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The shipped models and the demo scene.
ASSETS = Path(__file__).resolve().parent / "assets"


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
