"""``LensReference``: LENS end to end in torch, the oracle of the LENS export's validation.

The request as LENS runs it (reference/other_families.md §1.1): transformers' greedy ``generate`` with LENS's
prompt, to EOS; the mask pass (the whole sequence + the learned queries, plain 1-D positions, a fresh prefill,
post-norm hidden states); the context module; SAM2 with the token as its only sparse prompt (dense = the
no-mask embedding, single-mask output with the stability fallback), the logits upsampled bilinearly straight
to the original size, ``> 0``. The pieces are ``segzero_edge.reference.lens`` (written from the facts, not from
LENS's code) and transformers' Qwen2.5-VL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segzero_edge.frame import ImageLike, load_image
from segzero_edge.reference.lens import load_context_module, load_lens_sam2, read_lens_parts
from segzero_edge.sam2.contract import HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, IMAGE_EMBED

from ..reasoner_export.checkpoint import WeightReader, inspect_checkpoint
from ..reasoner_export.wrappers import load_reference_model


@dataclass(frozen=True, eq=False)
class LensReferenceResult:
    """One request through ``LensReference``.

    Attributes:
        text, token_ids: the generation (special tokens skipped in ``text``; EOS included in ``token_ids``).
        query_hidden: ``[Q, H]`` post-norm hidden states of the queries in the mask pass.
        sparse_prompt: ``[1, 1, D]``; low_res: ``[r, r]`` the chosen logits; mask: ``(H, W)`` bool.
    """

    text: str
    token_ids: tuple[int, ...]
    query_hidden: np.ndarray
    sparse_prompt: np.ndarray
    low_res: np.ndarray
    mask: np.ndarray


class LensReference:
    """LENS end to end in torch (fp32, CPU by default) from a checkpoint in LENS's published layout.

    Args:
        checkpoint: the LENS checkpoint directory.
        input_size: the square reasoner input (default: ``segzero_edge.json``, else 840).
        template: ``grounding`` or ``cot`` (``segzero_edge.prompt.LENS_TEMPLATES``).
        sam2_config: SAM2 config of ``sam.*`` (default: guessed).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        input_size: int | None = None,
        template: str = "grounding",
        sam2_config: str | None = None,
    ) -> None:
        from segzero_edge.reference.torch_reasoner import TorchReasoner

        self.checkpoint = inspect_checkpoint(checkpoint, input_size=input_size, family="lens")
        reader = WeightReader(self.checkpoint.weight_files)
        self.parts = read_lens_parts(reader, self.checkpoint.text.hidden_size)
        self.context = load_context_module(self.parts)
        self.sam, self.sam2_config = load_lens_sam2(self.parts.sam, sam2_config)
        model = load_reference_model(self.checkpoint.config, reader)
        self.reasoner = TorchReasoner(
            self.checkpoint.path,
            model=model,
            family="lens",
            input_size=self.checkpoint.preprocess.input_size,
            template=template,
        )
        self.model = model

    def query_hidden(self, image: ImageLike, question: str, token_ids: list[int] | tuple[int, ...]) -> np.ndarray:
        """The mask pass: ``[Q, H]`` hidden states of the queries after prompt + ``token_ids``."""
        import torch

        r = self.reasoner
        inputs = r.inputs(image, question)
        ids = torch.cat([inputs.input_ids, torch.tensor([list(token_ids)], dtype=inputs.input_ids.dtype)], dim=1)
        with torch.no_grad():
            embeds = self.model.get_input_embeddings()(ids)
            image_embeds = torch.cat(
                list(self.model.model.get_image_features(inputs.pixel_values, inputs.image_grid_thw).pooler_output)
            )
            embeds[ids == self.model.config.image_token_id] = image_embeds.to(embeds.dtype)
            queries = torch.from_numpy(self.parts.queries)[None].to(embeds.dtype)
            embeds = torch.cat([embeds, queries], dim=1)
            pad = r.processor.tokenizer.pad_token_id
            mask = torch.ones(embeds.shape[:2], dtype=torch.long)
            if pad is not None:
                mask[:, : ids.shape[1]] = (ids != pad).long()
            pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # transformers 4.51's text-only branch
            out = self.model.model.language_model(
                inputs_embeds=embeds, attention_mask=mask, position_ids=pos[None].expand(3, -1, -1), use_cache=False
            )
        return out.last_hidden_state[0, -self.parts.num_queries :].float().numpy()

    def sparse_prompt(self, query_hidden: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.context(torch.from_numpy(np.asarray(query_hidden, np.float32))[None]).numpy()

    def mask(self, image: ImageLike, sparse_prompt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SAM2 with the token as the only sparse prompt: ``(chosen low-res logits [r, r], mask (H, W) bool)``."""
        import torch
        import torch.nn.functional as F

        from segzero_edge.reference.torch_sam2 import encode_image, official_preprocess

        rgb = load_image(image)
        sam = self.sam
        feats = encode_image(sam, official_preprocess(rgb, sam.image_size))
        with torch.no_grad():
            sparse, dense = sam.sam_prompt_encoder(points=None, boxes=None, masks=None)
            sparse = torch.cat([sparse, torch.from_numpy(np.asarray(sparse_prompt, np.float32))], dim=1)
            low_res, _, _, _ = sam.sam_mask_decoder(
                image_embeddings=feats[IMAGE_EMBED],
                image_pe=sam.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=False,
                repeat_image=True,
                high_res_features=[feats[HIGH_RES_FEATS_0], feats[HIGH_RES_FEATS_1]],
            )
            full = F.interpolate(low_res, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return low_res[0, 0].numpy(), (full[0, 0] > 0).numpy()

    def predict(self, image: ImageLike, question: str, max_new_tokens: int = 64) -> LensReferenceResult:
        """The whole request: greedy generation to EOS, the mask pass, the context module, SAM2."""
        from segzero_edge.reasoner.generate import GenerationOptions

        rgb = load_image(image)
        opts = GenerationOptions(max_new_tokens=max_new_tokens, constrained=False, stop_at_answer=False)
        gen = self.reasoner.generate(rgb, question, opts)
        hidden = self.query_hidden(rgb, question, gen.token_ids)
        sparse = self.sparse_prompt(hidden)
        low_res, mask = self.mask(rgb, sparse)
        return LensReferenceResult(gen.text, gen.token_ids, hidden, sparse, low_res, mask)
