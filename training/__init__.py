"""GRPO training of the reasoning model (installed as ``segzero_edge.training``; ``train`` extra)."""
