"""Checkpoints -> engine directory (installed as ``segzero_edge.export``; needs the ``export`` extra).

Imports torch, transformers, onnx and the official ``sam2`` package lazily, inside the functions that
use them, so ``segzero-edge export --help`` works without them.
"""
