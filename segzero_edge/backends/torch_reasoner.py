"""The torch reference backend of the reasoner: ``transformers`` ``generate`` with our prompt, constraint and
stopping (optional extra ``torch``; ``quant`` for optimum-quanto INT8/INT4 weights).

Same request as the ONNX Runtime ``Reasoner``: the image is stretched to the checkpoint's input size with
PIL BILINEAR, the prompt is ``render_chat(question)``, and the transformers Qwen2.5-VL processor (PIL
backend, ``hf_loading.load_qwen_processor``) expands the image pads. The answer constraint plugs in as a
``LogitsProcessor`` (forced tokens are taken one per step: transformers has no jump-forward), the
``</answer>`` stop as a ``StoppingCriteria``. Used for parity tests, export validation, and by server users
who prefer torch. torch/transformers are imported lazily.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..answer import AnswerStream
from ..errors import InputError, missing_extra
from ..prompt import read_checkpoint_meta, render_chat
from ..reasoner.constraint import AnswerConstraintFactory
from ..reasoner.engine import ReasonerResult
from ..reasoner.generate import GenerationOptions, TokenConstraint
from ..reasoner.preprocess import ImageInput, load_image, resize_for_model
from .hf_loading import load_qwen_model, load_qwen_processor

QUANTO_WEIGHTS = ("fp32", "int8", "int4")


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise missing_extra("the torch reference reasoner", "torch", cause=exc) from exc
    return torch


def constraint_logits_processor(constraint: TokenConstraint, prompt_len: int):
    """A transformers ``LogitsProcessor`` applying ``constraint`` (batch of one).

    Before each step it advances the constraint with the tokens generated since the last call, then
    leaves only the forced token (if any) or the allowed ones.
    """
    torch = _torch()
    from transformers import LogitsProcessor

    class ConstraintProcessor(LogitsProcessor):
        def __init__(self) -> None:
            self.seen = 0

        def __call__(self, input_ids, scores):
            new = input_ids[0, prompt_len:].tolist()
            for token in new[self.seen :]:
                constraint.advance(int(token))
            self.seen = len(new)
            forced = list(constraint.forced())
            keep = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            if forced:
                keep[int(forced[0])] = True
            else:
                allowed = constraint.allowed()
                if allowed is None:
                    return scores
                n = min(len(allowed), scores.shape[-1])
                keep[:n] = torch.from_numpy(np.asarray(allowed[:n], dtype=bool)).to(scores.device)
            return scores.masked_fill(~keep, float("-inf"))

    return ConstraintProcessor()


def answer_stopping_criteria(tokenizer, prompt_len: int):
    """A transformers ``StoppingCriteria`` that stops once the streaming answer decoder
    (``segzero_edge.answer.AnswerStream``, the rule the ONNX Runtime loop uses) sees the answer closed."""
    torch = _torch()
    from transformers import StoppingCriteria

    class AnswerStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            text = tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=True)
            done = AnswerStream().feed(text)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return AnswerStop()


class TorchReasoner:
    """The reasoning model on torch/transformers.

    Args:
        model_dir: a Hugging Face Qwen2.5-VL checkpoint directory.
        device: torch device (``"cpu"``, ``"cuda"``).
        dtype: weight dtype for loading (``"float32"``, ``"bfloat16"``, ...).
        weights: ``"fp32"`` (as loaded), ``"int8"`` or ``"int4"`` (optimum-quanto weight-only quantization of
            the language model; the vision tower stays float).
        model: an already loaded ``Qwen2_5_VLForConditionalGeneration`` to use instead of loading one.
        constraint_factory: builds the constraint for ``constrained=True`` options (default: the answer
            constraint for this tokenizer, the model's logits width and input size).
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        weights: str = "fp32",
        model: Any = None,
        constraint_factory: Callable[..., TokenConstraint] | None = None,
    ):
        if weights not in QUANTO_WEIGHTS:
            raise InputError(f"unsupported torch weights {weights!r}", hint=f"use one of {', '.join(QUANTO_WEIGHTS)}")
        self.model_dir = Path(model_dir)
        self.processor = load_qwen_processor(self.model_dir)
        self.model = model if model is not None else load_qwen_model(self.model_dir, dtype, device=device)
        self.input_size = int(read_checkpoint_meta(self.model_dir)["input_size"])
        self.weights = weights
        if weights != "fp32":
            self._quantize(weights)
        self._constraint_factory = constraint_factory or AnswerConstraintFactory(
            self.tokenizer, vocab_size=self.model.config.text_config.vocab_size, input_size=self.input_size
        )

    def _quantize(self, weights: str) -> None:
        try:
            from optimum.quanto import freeze, qint4, qint8, quantize
        except ImportError as exc:
            raise missing_extra("quantized torch weights", "quant", cause=exc) from exc
        qtype = qint8 if weights == "int8" else qint4
        quantize(self.model, weights=qtype, exclude=["model.visual", "model.visual.*"])  # the LM and its head
        freeze(self.model)

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def inputs(self, image: ImageInput, question: str):
        """The processor's tensors for one request (batch of one)."""
        resized = resize_for_model(load_image(image), self.input_size)
        inputs = self.processor(images=[resized], text=[render_chat(question)], return_tensors="pt")
        return inputs.to(self.model.device)

    def generate(
        self,
        image: ImageInput,
        question: str,
        options: GenerationOptions | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        output_logits: bool = False,
    ) -> ReasonerResult:
        """Like ``Reasoner.generate``. With ``output_logits``, the per-step logits are kept in ``self.last_logits``
        (``[new_tokens, vocab]`` float32)."""
        torch = _torch()
        from transformers import LogitsProcessorList, StoppingCriteriaList

        options = options or GenerationOptions()
        start = time.perf_counter()
        inputs = self.inputs(image, question)
        prompt_len = int(inputs["input_ids"].shape[1])
        processors, stops = LogitsProcessorList(), StoppingCriteriaList()
        if options.constrained:
            processors.append(constraint_logits_processor(self._constraint_factory(options), prompt_len))
        if options.stop_at_answer:
            stops.append(answer_stopping_criteria(self.tokenizer, prompt_len))
        kwargs: dict[str, Any] = {"max_new_tokens": options.max_new_tokens, "do_sample": options.do_sample}
        if options.do_sample:
            kwargs.update(temperature=options.temperature, top_p=options.top_p, top_k=options.top_k)
            if options.seed is not None:
                torch.manual_seed(options.seed)
        streamer = _CallbackStreamer(self.tokenizer, on_text) if on_text else None
        t0 = time.perf_counter()
        with torch.no_grad():  # (quanto int4 fails under inference_mode)
            out = self.model.generate(
                **inputs,
                logits_processor=processors,
                stopping_criteria=stops,
                streamer=streamer,
                return_dict_in_generate=True,
                output_logits=output_logits,
                **kwargs,
            )
        t1 = time.perf_counter()
        tokens = out.sequences[0, prompt_len:].tolist()
        if output_logits:
            self.last_logits = torch.cat(list(out.logits), dim=0).float().cpu().numpy()
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        reason = (
            "eos"
            if tokens and tokens[-1] in eos
            else ("answer" if options.stop_at_answer and AnswerStream().feed(text) else "max_new_tokens")
        )
        return ReasonerResult(
            text=text,
            token_ids=tuple(tokens),
            prompt_tokens=prompt_len,
            stop_reason=reason,
            timings_ms={"generate": (t1 - t0) * 1e3, "total": (t1 - start) * 1e3},
            decode_tokens_per_s=len(tokens) / (t1 - t0) if t1 > t0 else 0.0,
            forward_calls=len(tokens),
            image_size=load_image(image).size,
            input_size=self.input_size,
        )

    def teacher_forced_logits(self, image: ImageInput, question: str, token_ids: list[int]) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]`` predicting each of ``token_ids`` (one forward pass)."""
        torch = _torch()
        inputs = self.inputs(image, question)
        prompt_len = int(inputs["input_ids"].shape[1])
        extra = torch.tensor([list(token_ids[:-1])], dtype=inputs["input_ids"].dtype, device=self.model.device)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
        with torch.no_grad():  # (quanto int4 fails under inference_mode)
            logits = self.model(**inputs).logits[0, prompt_len - 1 :]
        return logits.float().cpu().numpy()


class _CallbackStreamer:
    """A transformers streamer that passes decoded text pieces of the generated tokens to a callback."""

    def __init__(self, tokenizer, callback: Callable[[str], None]):
        self.tokenizer, self.callback = tokenizer, callback
        self.prompt_done = False
        self.ids: list[int] = []
        self.text = ""

    def put(self, value) -> None:
        if not self.prompt_done:  # the first call carries the prompt
            self.prompt_done = True
            return
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.text) and not text.endswith("\ufffd"):
            self.callback(text[len(self.text) :])
            self.text = text

    def end(self) -> None:
        """Flush what was held back (a trailing partial UTF-8 character decodes to U+FFFD)."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if len(text) > len(self.text) and text.startswith(self.text):
            self.callback(text[len(self.text) :])
            self.text = text
