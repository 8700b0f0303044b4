"""``export_reasoner``: a Qwen2.5-VL checkpoint -> the ``reasoner`` component of an engine directory.

Files written under ``reasoner/`` (all listed with sha256 in ``manifest.json``)::

    vision.onnx (+ .data)     pixel patches of the fixed input -> image embeddings (float32, grid baked in)
    decoder.onnx + .data      the language model with KV cache (fp32/fp16 MatMul or INT8/INT4 MatMulNBits)
    embed_tokens.npy          the token embedding table [vocab, hidden] (float32, or float16 for
                              quantized exports), read by numpy with mmap
    tokenizer.json, tokenizer_config.json, chat template, preprocessor_config.json, generation_config.json
    reasoner.json             the settings recorded in manifest.components["reasoner"], for people

Everything is written into a temporary directory (``EngineDirWriter``), validated against
``transformers`` (``validate.py``), and only then moved into place with the manifest written last.

Memory: the token table is written in blocks of rows and the decoder one weight at a time
(``graph_files.py``, ``decoder_graph.py``); the vision tower is loaded alone; the validation opens the engine's
sessions one at a time and streams the fp32 reference one decoder layer at a time (``validate.py``). The
checkpoint's header gives the estimate checked before anything is written (``memory_plan.py``; Seg-Zero-7B
int4 with full validation: 9.0 GB measured at its peak, the vision tower's export).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segzero_edge.answer.contract import AnswerSettings
from segzero_edge.errors import ConfigError
from segzero_edge.manifest import GraphSpec, Manifest, SourceCheckpoint, sha256_tree
from segzero_edge.prompt import FAMILIES, LENS, LENS_DEFAULT_TEMPLATE, PROMPT_VERSION
from segzero_edge.reasoner.contract import (
    COMPONENT,
    DECODER,
    EMBEDDINGS_FILE,
    HIDDEN_STATES,
    PAST,
    SEQ,
    SETTINGS_FILE,
    TOTAL,
    VISION,
    EmbeddingsSpec,
    ReasonerSettings,
    decoder_spec,
    vision_spec,
)

from ..engine_dir import EngineDirWriter
from .checkpoint import QwenCheckpoint, WeightReader, inspect_checkpoint
from .decoder_graph import DecoderPrecision, build_decoder
from .graph_files import export_vision, progress_bar, write_embeddings
from .memory import release_memory
from .memory_plan import check_memory, plan_export_memory
from .quantize import QuantSpec
from .wrappers import rotary_inv_freq

log = logging.getLogger(__name__)

WEIGHTS = ("int4", "int8", "fp16", "fp32")
#: text tokens of a Seg-Zero prompt besides the image (about 130) rounded up, for TensorRT profiles
PROMPT_TEXT_TOKENS = 512


@dataclass(frozen=True)
class ReasonerExportConfig:
    """Options of ``segzero-edge export reasoner``.

    Attributes:
        weights: decoder linear-layer precision: ``int4``, ``int8``, ``fp16`` or ``fp32``.
        block_size: INT4/INT8 block size along K (power of two >= 16).
        lm_head: LM head precision; ``auto`` = ``int8`` for int4/int8 exports, else as ``weights``.
        int8_layers: decoder layers kept INT8 in an ``int4`` export (e.g. ``(0,)``; default none). On the
            small world's reasoner INT4 in the first layer alone caused ~80% of the logit error (docs/world.md).
        accuracy_level: MatMulNBits ``accuracy_level``: 4 (default) = int8 activations in ONNX Runtime's CPU
            kernels, the fast path; 0 = fp32 compute (on ORT 1.31 CPU the 8-bit kernel at level 0 is ~40x
            slower per decode step: benchmarks/results/reasoner_cpu.md). The validation checks weight-only
            identity on a level-0 twin of the graph either way.
        input_size: square model input in pixels; None = the checkpoint's ``segzero_edge.json`` (else 840).
        embeddings_dtype: ``auto`` (float32 for fp32, float16 otherwise), ``float32`` or ``float16``.
        max_context: longest sequence (prompt + generated) in TensorRT profiles; None = image tokens + 2048.
        validate: ``full`` (parity vs transformers on ``validation_pairs`` pairs), ``quick`` (2 pairs) or ``none``.
        validation_pairs: image/question pairs compared (>= 5 for ``full``).
        validation_tokens: greedy tokens generated per pair.
        threads: ONNX Runtime threads during validation.
        reference_device: where validation runs the transformers reference: ``auto`` (CUDA when torch has
            it), ``cpu`` or ``cuda``.
        memory_check: refuse before writing anything when the export's estimated peak memory exceeds the
            memory available (``memory_plan.check_memory``).
        family: the model family (``seg_zero`` or ``vision_reasoner``; ``lens`` through ``export lens``);
            None = the checkpoint's ``segzero_edge.json``, else ``seg_zero``.
        hidden_states: give the decoder graph the ``hidden_states`` output (LENS's mask pass).
        prompt_template: the LENS prompt template (``segzero_edge.prompt.LENS_TEMPLATES``; LENS only).
    """

    weights: str = "int4"
    block_size: int = 128
    lm_head: str = "auto"
    int8_layers: tuple[int, ...] = ()
    accuracy_level: int = 4
    input_size: int | None = None
    embeddings_dtype: str = "auto"
    max_context: int | None = None
    validate: str = "full"
    validation_pairs: int = 5
    validation_tokens: int = 24
    threads: int | None = None
    reference_device: str = "auto"
    memory_check: bool = True
    family: str | None = None
    hidden_states: bool = False
    prompt_template: str | None = None

    def __post_init__(self) -> None:
        if self.weights not in WEIGHTS:
            raise ConfigError(f"unsupported precision {self.weights!r}", hint=f"use one of {', '.join(WEIGHTS)}")
        if self.lm_head not in ("auto", *WEIGHTS):
            raise ConfigError(
                f"unsupported LM head precision {self.lm_head!r}", hint=f"use auto or one of {', '.join(WEIGHTS)}"
            )
        if self.embeddings_dtype not in ("auto", "float32", "float16"):
            raise ConfigError(f"embeddings_dtype must be auto, float32 or float16, got {self.embeddings_dtype!r}")
        if self.validate not in ("full", "quick", "none"):
            raise ConfigError(f"validate must be full, quick or none, got {self.validate!r}")
        if self.reference_device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"reference_device must be auto, cpu or cuda, got {self.reference_device!r}")
        if self.family is not None and self.family not in FAMILIES:
            raise ConfigError(f"unknown model family {self.family!r}", hint=f"use one of {', '.join(FAMILIES)}")
        if self.family == LENS and not self.hidden_states:
            raise ConfigError(
                "a LENS reasoner needs the hidden-states output of its mask pass",
                hint="export LENS checkpoints with `segzero-edge export lens`",
            )
        if self.prompt_template is not None and self.family != LENS:
            raise ConfigError("prompt_template is for LENS reasoners (family 'lens')")
        QuantSpec(bits=4, block_size=self.block_size, accuracy_level=self.accuracy_level)  # validates both
        if isinstance(self.int8_layers, list):  # as YAML / JSON configs give it
            object.__setattr__(self, "int8_layers", tuple(self.int8_layers))
        self.decoder_precision()  # validates int8_layers
        for name, lo in (("validation_pairs", 1), ("validation_tokens", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.validate == "full" and self.validation_pairs < 5:
            raise ConfigError("validate='full' compares at least 5 image/question pairs")

    def decoder_precision(self) -> DecoderPrecision:
        head = self.lm_head
        if head == "auto":
            head = "int8" if self.weights in ("int4", "int8") else self.weights
        return DecoderPrecision(
            self.weights,
            head,
            QuantSpec(block_size=self.block_size, accuracy_level=self.accuracy_level),
            int8_layers=self.int8_layers,
        )

    def embedding_dtype(self) -> str:
        if self.embeddings_dtype != "auto":
            return self.embeddings_dtype
        return "float32" if self.weights == "fp32" else "float16"


def _copy_files(ckpt: QwenCheckpoint, dest: Path) -> dict[str, str]:
    files = {}
    for name in ckpt.files:
        shutil.copy2(ckpt.path / name, dest / name)
        files[name] = f"reasoner/{name}"
    return files


def _settings(
    ckpt: QwenCheckpoint,
    cfg: ReasonerExportConfig,
    files: dict[str, str],
    embeddings: EmbeddingsSpec,
    precision: DecoderPrecision,
    weight_bytes: dict[str, int],
) -> ReasonerSettings:
    pre = ckpt.preprocess
    gen = ckpt.generation
    eos = gen.get("eos_token_id", getattr(ckpt.config.text_config, "eos_token_id", None))
    eos_ids = [int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
    if not eos_ids:
        eos_ids = [ckpt.token_ids["im_end"]]
    roles = {"tokenizer": "tokenizer.json", "tokenizer_config": "tokenizer_config.json"}
    roles.update(preprocessor_config="preprocessor_config.json", generation_config="generation_config.json")
    return ReasonerSettings(
        model_type="qwen2_5_vl",
        prompt_version=PROMPT_VERSION,
        weights=cfg.weights,
        precision=precision.to_dict(),
        preprocess=pre,
        text=ckpt.text,
        token_ids=dict(ckpt.token_ids),
        eos_token_ids=tuple(eos_ids),
        answer=AnswerSettings(grammar=ckpt.family, model_size=(pre.input_size, pre.input_size)),
        pad_token_id=gen.get("pad_token_id", ckpt.token_ids["endoftext"]),
        bos_token_id=gen.get("bos_token_id"),
        generation_defaults={
            k: gen[k] for k in ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty") if k in gen
        },
        files={role: files[name] for role, name in roles.items() if name in files} | {"settings": SETTINGS_FILE},
        embeddings=embeddings,
        decoder={
            "logits_of": "last_position",
            "batch": 1,
            "kv_dtype": "float32",
            "weight_bytes": weight_bytes,
            **({HIDDEN_STATES: True} if cfg.hidden_states else {}),
        },
        prompt_template=(cfg.prompt_template or LENS_DEFAULT_TEMPLATE) if ckpt.family == LENS else None,
    )


def _graph_specs(
    ckpt: QwenCheckpoint, vision: dict, decoder: dict, precision: DecoderPrecision, cfg: ReasonerExportConfig
) -> dict[str, GraphSpec]:
    pre, text = ckpt.preprocess, ckpt.text
    max_ctx = cfg.max_context or pre.num_image_tokens + 2048
    # LENS's mask pass feeds the whole sequence (prompt, answer, queries) in one call
    max_prompt = max_ctx if cfg.hidden_states else min(max_ctx, pre.num_image_tokens + PROMPT_TEXT_TOKENS)
    typical = pre.num_image_tokens + 130
    return {
        VISION: vision_spec(pre, text.hidden_size, tuple(f"reasoner/{f}" for f in vision["external_data"])),
        DECODER: decoder_spec(
            text,
            precision=precision.body,
            quantization=precision.to_dict(),
            profiles={SEQ: (1, 1, max_prompt), PAST: (1, typical, max_ctx), TOTAL: (2, typical + 1, max_ctx + 1)},
            external_data=(f"reasoner/{decoder['data_file']}",),
            hidden_states=cfg.hidden_states,
        ),
    }


def export_reasoner(model_dir: str | Path, out_dir: str | Path, config: ReasonerExportConfig | None = None) -> Manifest:
    """Export a Qwen2.5-VL checkpoint into the ``reasoner`` component of ``out_dir``.

    Raises:
        CheckpointError: not a complete Qwen2.5-VL checkpoint (the message names the file).
        InputError / ConfigError: an unsupported input size or option.
        ExportValidationError: the exported graphs disagree with transformers (nothing is written).
    """
    cfg = config or ReasonerExportConfig()
    start = time.perf_counter()
    ckpt = inspect_checkpoint(model_dir, input_size=cfg.input_size, family=cfg.family)
    precision = cfg.decoder_precision()
    reader = WeightReader(ckpt.weight_files)
    log.info(
        "exporting %s: %d layers, hidden %d, input %d (%d image tokens), decoder %s%s / lm_head %s",
        ckpt.path,
        ckpt.text.num_layers,
        ckpt.text.hidden_size,
        ckpt.preprocess.input_size,
        ckpt.preprocess.num_image_tokens,
        precision.body,
        f" (int8 layers {list(precision.int8_layers)})" if precision.int8_layers else "",
        precision.lm_head,
    )
    if cfg.validate != "none":
        from .reference_stream import reference_device

        reference_device(cfg.reference_device)  # refuse cuda without a GPU before writing anything
    if cfg.memory_check:
        plan = plan_export_memory(reader, ckpt.config, cfg, precision, ckpt.preprocess.num_patches)
        check_memory(plan, cfg)
    with EngineDirWriter(out_dir, COMPONENT) as w:
        comp = w.path(SETTINGS_FILE).parent
        files = _copy_files(ckpt, comp)
        log.info("writing the token embeddings")
        emb_dtype = cfg.embedding_dtype()
        emb_shape = write_embeddings(reader, w.path(EMBEDDINGS_FILE), emb_dtype)
        release_memory()
        log.info("writing the decoder graph (%s)", precision.body)
        bar = progress_bar(ckpt.text.num_layers, "decoder")
        try:
            decoder = build_decoder(
                ckpt.text,
                reader.get,
                rotary_inv_freq(ckpt.config),
                precision,
                comp,
                progress=bar.update if bar else None,
                hidden_states=cfg.hidden_states,
            )
        finally:
            if bar:
                bar.close()
        release_memory()
        log.info("decoder written (%s)", ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in decoder["weight_bytes"].items()))
        log.info("exporting the vision tower (%dx%d grid)", *ckpt.preprocess.grid_thw[1:])
        vision = export_vision(ckpt, reader, comp / "vision.onnx")
        log.info("vision tower written (%.1f MB)", vision["bytes"] / 1e6)
        embeddings = EmbeddingsSpec(EMBEDDINGS_FILE, emb_dtype, tuple(emb_shape))
        settings = _settings(ckpt, cfg, files, embeddings, precision, decoder["weight_bytes"]).to_dict()
        w.path(SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        graphs = _graph_specs(ckpt, vision, decoder, precision, cfg)
        sources = [
            SourceCheckpoint(
                COMPONENT,
                str(Path(model_dir).absolute()),  # absolute: found from any working directory
                sha256_tree(ckpt.path),
                {"model_type": "qwen2_5_vl", "text": ckpt.text.to_dict()},
            )
        ]
        numbers: dict[str, Any] = {}
        if cfg.validate != "none":
            from .validate import validate_reasoner

            preview = w.manifest(settings=settings, graphs=graphs, sources=sources)
            numbers = validate_reasoner(ckpt, preview, w.dir, cfg)
        numbers["export_seconds"] = round(time.perf_counter() - start, 2)
        return w.commit(settings=settings, graphs=graphs, sources=sources, validation=numbers)
