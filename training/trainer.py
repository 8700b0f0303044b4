"""``SegZeroGRPOTrainer``: TRL's ``GRPOTrainer`` with exact resumption after a crash.

Two fixes on top of trl 1.16.0 / transformers 5.23, both covered by the SIGKILL resume test:

* checkpoint weights are reloaded through ``from_pretrained`` and copied strictly: the Trainer's own
  non-strict ``load_state_dict`` misses every Qwen2.5-VL key (checkpoints are saved in the original key
  layout, the module uses the new one) and would silently restart from the base weights;
* the data sampler draws one permutation per epoch seeded with ``seed + epoch`` (TRL's sampler chains
  epochs through one generator, so a run resumed in a later epoch would replay epoch 0's order).

It also saves the image-only processor (no video processor, no torchvision) with every checkpoint.
"""

from __future__ import annotations

import logging
from typing import Any

from segzero_edge.errors import CheckpointError

logger = logging.getLogger(__name__)


def trainer_class() -> type:
    """The ``SegZeroGRPOTrainer`` class (built on first use, so importing this module skips TRL)."""
    from trl import GRPOTrainer
    from trl.trainer.utils import RepeatSampler

    class EpochRepeatSampler(RepeatSampler):
        """TRL's ``RepeatSampler`` with one permutation per epoch, seeded by ``seed + epoch``.

        TRL's sampler draws every epoch's permutation from one generator, so a run resumed in epoch
        ``e > 0`` would replay epoch 0's order. Seeding per epoch (``set_epoch`` is called by the
        Trainer) makes a resumed run see exactly the data an uninterrupted run sees.
        """

        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = int(epoch)

        def __iter__(self):
            if self.shuffle:
                self.generator.manual_seed((self.seed or 0) + self.epoch)
            return super().__iter__()

    class SegZeroGRPOTrainer(GRPOTrainer):
        """``GRPOTrainer`` with exact resumption and the image-only processor saved with every checkpoint."""

        def _get_train_sampler(self, dataset: Any = None) -> Any:
            dataset = self.train_dataset if dataset is None else dataset
            return EpochRepeatSampler(
                data_source=dataset,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                shuffle=self.shuffle_dataset,
                seed=self.args.seed,
            )

        def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
            processor, self.processing_class = self.processing_class, None
            try:
                super()._save(output_dir, state_dict)
            finally:
                self.processing_class = processor
            if self.args.should_save and processor is not None:
                processor.save_pretrained(output_dir if output_dir is not None else self.args.output_dir)

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            # transformers 5.23's Trainer loads checkpoint weights with a raw, non-strict
            # load_state_dict. save_pretrained writes Qwen2.5-VL in the original key layout
            # ("model.layers.*", "visual.*") while the module uses the new one ("model.language_model.*"),
            # so every key is missing and the resumed run silently restarts from the base weights.
            # Load through from_pretrained (which converts the keys) and copy strictly instead.
            # FSDP and DeepSpeed checkpoints have their own formats: leave those to the Trainer.
            if self.is_fsdp_enabled or self.is_deepspeed_enabled:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            target = self.accelerator.unwrap_model(model if model is not None else self.model)
            dtype = next(target.parameters()).dtype
            fresh = type(target).from_pretrained(resume_from_checkpoint, dtype=dtype, device_map=None)
            try:
                target.load_state_dict(fresh.state_dict(), strict=True)
            except RuntimeError as exc:
                raise CheckpointError(
                    f"{resume_from_checkpoint} does not hold the weights of this model: {exc}",
                    hint="resume with the same model.name_or_path the run started with",
                ) from exc
            logger.info("loaded the policy weights of %s", resume_from_checkpoint)
            return None

    return SegZeroGRPOTrainer
