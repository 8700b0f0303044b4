"""GRPO training of the reasoning model (installed as ``segzero_edge.training``; ``train`` extra).

* ``rewards``: Seg-Zero's five rule rewards (strict, soft) and the opt-in robust set, as TRL reward
  functions and as ``seg_zero_reward_components(completion, solution, strict=True)``.
* ``config``: ``TrainConfig`` (validated, frozen) from YAML + ``key=value`` overrides; shipped recipes
  in ``recipes/`` and accelerate configs (FSDP, DeepSpeed ZeRO-3) in ``accelerate/``.
* ``data`` / ``prepare``: the Seg-Zero dataset layout, its loader, and ``prepare-data``.
* ``grpo``: the recipe on TRL's ``GRPOTrainer`` (``build_trainer``, ``train``); ``trainer``: the
  ``GRPOTrainer`` subclass with exact resumption; ``grpo_math``: a pure-PyTorch reference of the GRPO
  loss, used as a test oracle.
* ``checkpoints``: resuming after a crash, ``training_meta.json``.

Importing this package is cheap: torch, transformers and TRL are imported by the modules that need them.
"""
