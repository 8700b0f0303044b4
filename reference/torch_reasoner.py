"""The reasoner on torch/transformers: the oracle (``TorchReasoner``) and the step backend of the pipeline.

* ``TorchReasoner``: ``transformers`` ``generate`` with our prompt, constraint and stopping, the reference
  the exporter validates the ONNX graphs and the numpy loop against. Same request as the runtime: the image
  is stretched to the checkpoint's input size with PIL BILINEAR, the prompt is ``render_chat(question)``, and
  the transformers Qwen2.5-VL processor (PIL backend, ``qwen.load_qwen_processor``) expands the image pads.
  The answer constraint plugs in as a ``LogitsProcessor`` (forced tokens are taken one per step:
  transformers has no jump-forward), the ``</answer>`` stop as a ``StoppingCriteria``.
* ``TorchReasonerBackend`` (``open_reasoner_backend``): the ``backend="torch"`` backend of the one reasoner
  pipeline (``segzero_edge.reasoner.ReasonerPipeline``): the checkpoint's vision tower, embedding table and
  language model + LM head as the step function, with a ``DynamicCache``.

Both take optimum-quanto INT8/INT4 weight-only quantization of the language model (extra ``quant``).
torch/transformers are imported lazily.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..answer import AnswerConstraint, AnswerStream
from ..errors import CheckpointError, InputError, missing_extra
from ..frame import ImageLike, load_image
from ..manifest import Manifest, Verify
from ..prompt import check_family, read_checkpoint_meta, render_chat
from ..reasoner.contract import COMPONENT, ReasonerSettings
from ..reasoner.generate import GenerationOptions, TokenConstraint, build_constraint
from ..reasoner.pipeline import ReasonerResult
from ..reasoner.preprocess import resize_for_model
from .qwen import load_qwen_model, load_qwen_processor

log = logging.getLogger(__name__)

QUANTO_WEIGHTS = ("fp32", "int8", "int4")
#: ``weights="auto"``: the engine's decoder precision -> the optimum-quanto weights closest to it.
AUTO_WEIGHTS = {"int4": "int4", "int8": "int8"}


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
            forced = list(constraint.forced_ids())
            keep = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            if forced:
                keep[int(forced[0])] = True
            else:
                allowed = constraint.mask()
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


def processor_inputs(processor, image: ImageLike, question: str, *, input_size: int, family: str, template=None):
    """The transformers processor's tensors (``input_ids``, ``pixel_values``, ``image_grid_thw``, ...) for one
    request, batch of one: the image stretched to ``input_size`` like the runtime, the prompt contract's text."""
    resized = resize_for_model(image, input_size)
    text = render_chat(question, family=family, template=template)
    return processor(images=[resized], text=[text], return_tensors="pt")


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
            constraint for this tokenizer, the model's logits width and input size, with the options'
            effective thinking budget).
        family: the model family (prompt and answer grammar); default: the checkpoint's ``segzero_edge.json``,
            else ``"seg_zero"`` (official VisionReasoner checkpoints need ``family="vision_reasoner"``).
        input_size: the square model input; default: the checkpoint's ``segzero_edge.json``, else 840.
        template: the LENS prompt template (``segzero_edge.prompt.LENS_TEMPLATES``; LENS only).
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
        family: str | None = None,
        input_size: int | None = None,
        template: str | None = None,
    ):
        if weights not in QUANTO_WEIGHTS:
            raise InputError(f"unsupported torch weights {weights!r}", hint=f"use one of {', '.join(QUANTO_WEIGHTS)}")
        self.model_dir = Path(model_dir)
        self.processor = load_qwen_processor(self.model_dir)
        self.model = model if model is not None else load_qwen_model(self.model_dir, dtype, device=device)
        if model is not None and (self.model_dir / "generation_config.json").is_file():
            # a model built from its config alone (the exporter's fp32 reference) stops where from_pretrained's
            # would: at the checkpoint's generation_config.json EOS ids, as the engine does
            from transformers import GenerationConfig

            self.model.generation_config = GenerationConfig.from_pretrained(str(self.model_dir))
        meta = read_checkpoint_meta(self.model_dir)
        self.input_size = int(meta["input_size"] if input_size is None else input_size)
        self.family = check_family(family) if family is not None else meta["family"]
        self.template = template
        self.weights = weights
        if weights != "fp32":
            quantize_weights(self.model, weights)
        self._constraint_factory = constraint_factory
        self._constraints: dict[tuple[int, bool], AnswerConstraint] = {}

    def make_constraint(self, options: GenerationOptions) -> TokenConstraint:
        if self._constraint_factory is not None:
            return self._constraint_factory(options)
        return build_constraint(
            self._constraints,
            self.tokenizer,
            options,
            family=self.family,
            model_size=self.input_size,
            vocab_size=self.model.config.text_config.vocab_size,
        )

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    def inputs(self, image: ImageLike, question: str):
        """The processor's tensors for one request (batch of one)."""
        inputs = processor_inputs(
            self.processor, image, question, input_size=self.input_size, family=self.family, template=self.template
        )
        return inputs.to(self.model.device)

    def generate(
        self,
        image: ImageLike,
        question: str,
        options: GenerationOptions | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        output_logits: bool = False,
    ) -> ReasonerResult:
        """Like ``ReasonerPipeline.generate``. With ``output_logits``, the per-step logits are kept in
        ``self.last_logits`` (``[new_tokens, vocab]`` float32)."""
        torch = _torch()
        from transformers import LogitsProcessorList, StoppingCriteriaList

        options = options or GenerationOptions()
        start = time.perf_counter()
        rgb = load_image(image)
        inputs = self.inputs(rgb, question)
        prompt_len = int(inputs.input_ids.shape[1])
        processors, stops = LogitsProcessorList(), StoppingCriteriaList()
        if options.constrained:
            processors.append(constraint_logits_processor(self.make_constraint(options), prompt_len))
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
            image_size=(int(rgb.shape[1]), int(rgb.shape[0])),
            input_size=self.input_size,
            family=self.family,
        )

    def teacher_forced_logits(self, image: ImageLike, question: str, token_ids: list[int]) -> np.ndarray:
        """Logits ``[len(token_ids), vocab]`` predicting each of ``token_ids`` (one forward pass)."""
        torch = _torch()
        inputs = self.inputs(image, question)
        prompt_len = int(inputs.input_ids.shape[1])
        extra = torch.tensor([list(token_ids[:-1])], dtype=inputs.input_ids.dtype, device=self.model.device)
        ids = torch.cat([inputs.input_ids, extra], dim=1)
        kwargs = dict(inputs)
        kwargs.update(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            mm_token_type_ids=torch.cat([inputs.mm_token_type_ids, torch.zeros_like(extra)], dim=1),
        )
        with torch.no_grad():  # (quanto int4 fails under inference_mode)
            logits = self.model(**kwargs).logits[0, prompt_len - 1 :]
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


def quantize_weights(model, weights: str) -> None:
    """optimum-quanto weight-only ``"int8"``/``"int4"`` of the language model and its head, in place (the
    vision tower stays float)."""
    try:
        from optimum.quanto import freeze, qint4, qint8, quantize
    except ImportError as exc:
        raise missing_extra("quantized torch weights", "quant", cause=exc) from exc
    quantize(model, weights=qint8 if weights == "int8" else qint4, exclude=["model.visual", "model.visual.*"])
    freeze(model)


class TorchReasonerBackend:
    """The ``ReasonerBackend`` of a transformers Qwen2.5-VL model: vision tower, embedding table, and the
    language model + LM head as the step function over a ``DynamicCache``.

    Args:
        model: ``Qwen2_5_VLForConditionalGeneration`` in eval mode (optionally quantized).
        grid_thw: ``(1, grid_h, grid_w)`` of the model input (``PreprocessConfig.grid_thw``).
        device: the torch device the model is on.
    """

    name = "torch"

    def __init__(self, model, grid_thw: tuple[int, int, int], device: str) -> None:
        torch = _torch()
        self.model, self.device = model, str(device)
        self._grid = torch.tensor([list(grid_thw)], dtype=torch.long, device=model.device)
        self._dtype = next(model.model.language_model.parameters()).dtype
        params = inspect.signature(model.model.language_model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._cache = None

    def _tensor(self, arr: np.ndarray, dtype=None):
        torch = _torch()
        return torch.from_numpy(np.ascontiguousarray(arr)).to(self.model.device, dtype=dtype)

    def vision(self, pixel_values: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            out = self.model.model.get_image_features(self._tensor(pixel_values), self._grid).pooler_output
        return torch.cat(list(out)).float().cpu().numpy()

    def embed(self, ids: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            rows = self.model.get_input_embeddings()(self._tensor(np.asarray(ids, dtype=np.int64)))
        return rows.float().cpu().numpy().copy()

    def reset(self) -> None:
        from transformers import DynamicCache

        self._cache = DynamicCache(config=self.model.config.text_config)

    def step(self, inputs_embeds: np.ndarray, position_ids: np.ndarray) -> np.ndarray:
        torch = _torch()
        if self._cache is None:
            self.reset()
        with torch.no_grad():  # (quanto int4 fails under inference_mode)
            out = self.model.model.language_model(
                inputs_embeds=self._tensor(inputs_embeds, self._dtype),
                position_ids=self._tensor(np.asarray(position_ids, dtype=np.int64)),
                use_cache=True,
                **{self._cache_arg: self._cache},
            )
            logits = self.model.lm_head(out.last_hidden_state[:, -1])
        return logits[0].float().cpu().numpy()

    def hidden(self, inputs_embeds: np.ndarray, position_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Post-norm hidden states ``[n, hidden]`` of a fresh prefill (no cache), keys masked by
        ``attention_mask [n]``: transformers' ``last_hidden_state``, the LM head's input."""
        torch = _torch()
        with torch.no_grad():
            out = self.model.model.language_model(
                inputs_embeds=self._tensor(inputs_embeds, self._dtype),
                position_ids=self._tensor(np.asarray(position_ids, dtype=np.int64)),
                attention_mask=self._tensor(np.asarray(attention_mask, dtype=np.int64).reshape(1, -1)),
                use_cache=False,
            )
        return out.last_hidden_state[0].float().cpu().numpy()


def open_reasoner_backend(
    engine_dir: str | Path,
    manifest: Manifest,
    settings: ReasonerSettings,
    *,
    device: str = "auto",
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    weights: str = "auto",
    verify: Verify = "full",
) -> TorchReasonerBackend:
    """The torch backend of an engine directory's reasoner, from the checkpoint it was exported from.

    Args:
        engine_dir, manifest, settings: the engine directory, its manifest and its reasoner settings.
        device: ``"auto"`` (CUDA when torch sees one), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        threads: torch intra-op threads (``torch.set_num_threads``, process-wide); None leaves torch's.
        checkpoint: the Hugging Face directory; default: the source recorded in the manifest (``sources``).
        weights: ``"fp32"``, ``"int8"``, ``"int4"`` (optimum-quanto) or ``"auto"`` (int4/int8 when the
            engine's decoder is, else fp32).
        verify: ``"full"`` also checks the checkpoint's sha256 against the manifest.

    Raises:
        InputError: unknown weights. CheckpointError: no usable checkpoint, or another input size.
        BackendUnavailableError: torch/transformers (or optimum-quanto) or CUDA missing.
    """
    from .sources import resolve_checkpoint
    from .torch_sam2 import torch_device

    if weights == "auto":
        weights = AUTO_WEIGHTS.get(settings.weights, "fp32")
    if weights not in QUANTO_WEIGHTS:
        raise InputError(f"unknown torch weights {weights!r}", hint=f"use auto or one of {', '.join(QUANTO_WEIGHTS)}")
    torch = _torch()
    if threads is not None:
        torch.set_num_threads(int(threads))
    path = resolve_checkpoint(manifest, COMPONENT, checkpoint, verify=verify)
    size = int(read_checkpoint_meta(path)["input_size"])
    if size != settings.input_size:
        raise CheckpointError(
            f"{path} has input size {size}, the engine {settings.input_size}",
            hint="pass the checkpoint this engine came from",
        )
    dev = torch_device(device)
    model = load_qwen_model(path, "float32", device=dev)
    if weights != "fp32":
        quantize_weights(model, weights)
    log.info("reasoner torch backend: %s on %s (%s weights)", path, dev, weights)
    return TorchReasonerBackend(model, settings.preprocess.grid_thw, dev)
