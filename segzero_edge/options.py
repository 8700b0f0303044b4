"""``SegmenterOptions``: the per-request settings of ``Segmenter`` (validated), defined once: per ``Segmenter``
and, as keyword arguments, per call; the CLI derives its flags from the same fields."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from .errors import ConfigError
from .reasoner import GenerationOptions
from .sam2.contract import MASK_MODES


@dataclass(frozen=True)
class SegmenterOptions:
    """Per-request settings (validated), defined once: per ``Segmenter`` and, as keyword arguments, per call.

    ``generation`` holds the reasoner's options (``GenerationOptions``: ``max_new_tokens``, ``constrained``,
    ``thinking_budget``, sampling); ``updated(max_new_tokens=...)`` routes their names there.

    Attributes:
        generation: how the answer is generated.
        mask_mode: ``"best"`` (Seg-Zero: highest predicted IoU of SAM2's 3 multimask outputs) or
            ``"single"`` (single-mask output with SAM2's stability fallback).
        max_text_length: longest instruction accepted, in characters.
        overlap: encode the image with SAM2 while the reasoner generates.
    """

    generation: GenerationOptions = field(default_factory=GenerationOptions)
    mask_mode: str = field(
        default="best",
        metadata={
            "help": "best: highest predicted IoU of SAM2's 3 masks (Seg-Zero); single: single-mask output "
            "with SAM2's stability fallback",
            "choices": MASK_MODES,
        },
    )
    max_text_length: int = field(default=2000, metadata={"help": "longest instruction accepted, in characters"})
    overlap: bool = field(default=True, metadata={"help": "encode the image with SAM2 while the reasoner generates"})

    def __post_init__(self) -> None:
        if not isinstance(self.generation, GenerationOptions):
            raise ConfigError(f"generation must be GenerationOptions, got {type(self.generation).__name__}")
        if self.mask_mode not in MASK_MODES:
            raise ConfigError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        if (
            isinstance(self.max_text_length, bool)
            or not isinstance(self.max_text_length, int)
            or self.max_text_length < 1
        ):
            raise ConfigError(f"max_text_length must be an int >= 1, got {self.max_text_length!r}")
        if not isinstance(self.overlap, bool):
            raise ConfigError(f"overlap must be True or False, got {self.overlap!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every option name ``updated`` takes: the generation fields, then this class's own."""
        own = tuple(f.name for f in fields(cls) if f.name != "generation")
        return tuple(f.name for f in fields(GenerationOptions)) + own

    def updated(self, **overrides: Any) -> SegmenterOptions:
        """A copy with ``overrides`` applied (generation names go to ``generation``); unknown names raise
        ``ConfigError`` listing the valid ones."""
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.names()) - {"generation"})
        if unknown:
            raise ConfigError(f"unknown option(s) {unknown}", hint=f"valid options: {', '.join(self.names())}")
        generation_names = {f.name for f in fields(GenerationOptions)}
        gen = {k: v for k, v in overrides.items() if k in generation_names}
        own = {k: v for k, v in overrides.items() if k not in generation_names}
        if gen:
            own["generation"] = replace(own.get("generation", self.generation), **gen)
        return replace(self, **own)
