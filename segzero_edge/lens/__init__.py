"""LENS: the reasoner's hidden states, through a learned connector, prompt a fine-tuned SAM2 decoder."""

from .contract import LENS_FORMAT, LensSettings
from .pipeline import LensMask, LensPipeline

__all__ = ["LENS_FORMAT", "LensMask", "LensPipeline", "LensSettings"]
