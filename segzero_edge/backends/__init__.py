"""Inference backends and checkpoint loaders; each imports its heavy dependencies lazily."""
