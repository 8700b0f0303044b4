"""LENS's two graphs of its own: the context module and the SAM2 mask decoder driven by prompt embeddings.

* ``lens/context.onnx``: ``query_hidden [1, Q, H]`` -> ``sparse_prompt [1, 1, D]``. ``conv_1d`` (kernel Q over
  the Q tokens) is written as one ``MatMul`` over the flattened ``Q * H`` vector (the same arithmetic,
  reference/other_families.md §1.4), so that every weight of the graph is a MatMul weight.
  Weight-only variants: ``lens/context_int8.onnx`` and ``lens/context_int4.onnx``: every ``MatMul`` with a
  constant weight becomes ONNX Runtime's ``MatMulNBits`` (block-wise, symmetric), written by onnxruntime's
  own ``MatMulNBitsQuantizer`` (the library that defines the op; the reasoner's decoder is written by our
  streaming emitter because it never holds the whole model, which does not matter for 0.5 B parameters).
* ``lens/mask_decoder.onnx``: the checkpoint's fine-tuned SAM2 prompt encoder and mask decoder with the prompt
  tokens as input (``[N, S, D]``; LENS: S = 1 and no padding point) and the dense prompt = the no-mask
  embedding; outputs as ``sam2.mask_decoder`` (all four tokens, IoU, object score).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from segzero_edge.lens.contract import MASK_DECODER_INPUTS, MASK_DECODER_OUTPUTS, QUERY_HIDDEN, SPARSE_PROMPT
from segzero_edge.sam2.contract import FEATURES, NUM_OBJECTS

from ..reasoner_export.graph_files import consolidate_graph, trace_to_onnx
from ..sam2_export.onnx_export import export_module, feature_shapes
from .wrappers import ContextGraph, SparseMaskDecoderGraph

log = logging.getLogger(__name__)

#: Block size of the weight-only context variants (along K) and onnxruntime's accuracy level: 0 = float
#: activations, so the variants differ from the float graph by their weights alone. The context graph runs once
#: per request, so the int8-activation kernels (level 4) buy little; on the tiny test checkpoint level 4 doubled
#: the INT8 variant's token error.
CONTEXT_BLOCK_SIZE = 128
CONTEXT_ACCURACY_LEVEL = 0


def export_context(context, path: Path) -> dict[str, Any]:
    """Export the float context module (``reference.lens`` ``LensContext``) to ``path`` (+ ``.data`` over 1 GB)."""
    import torch

    q, h = context.connector.pos_embed.shape[1:]
    wrapper = ContextGraph(context).eval()
    with tempfile.TemporaryDirectory(prefix=".context-", dir=path.parent) as tmp:
        raw = Path(tmp) / "context.onnx"
        trace_to_onnx(wrapper, (torch.zeros(1, q, h),), raw, [QUERY_HIDDEN], [SPARSE_PROMPT])
        return consolidate_graph(raw, path)


def quantize_context(fp32_path: Path, path: Path, bits: int) -> dict[str, Any]:
    """A weight-only INT8/INT4 twin of the float context graph (``MatMulNBits``), written to ``path``."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(fp32_path))
    quantizer = MatMulNBitsQuantizer(
        model, bits=bits, block_size=CONTEXT_BLOCK_SIZE, is_symmetric=True, accuracy_level=CONTEXT_ACCURACY_LEVEL
    )
    chatty = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = chatty.level
    chatty.setLevel(logging.WARNING)  # it logs every node it visits at INFO
    try:
        quantizer.process()
    finally:
        chatty.setLevel(level)
    out = quantizer.model.model
    n = sum(1 for node in out.graph.node if node.op_type == "MatMulNBits")
    big = out.ByteSize() > (1 << 30)
    onnx.save_model(out, str(path), save_as_external_data=big, location=path.name + ".data" if big else None)
    log.info("wrote %s (%d MatMulNBits, %d bits)", path, n, bits)
    return {
        "file": path.name,
        "external_data": [path.name + ".data"] if big else [],
        "matmul_nbits": n,
        "quantization": {
            "bits": bits,
            "block_size": CONTEXT_BLOCK_SIZE,
            "symmetric": True,
            "accuracy_level": CONTEXT_ACCURACY_LEVEL,
            "tool": "onnxruntime.quantization.MatMulNBitsQuantizer",
        },
    }


def export_mask_decoder(model, path: Path, *, opset: int = 18, max_objects: int = 16, max_tokens: int = 8) -> None:
    """Export ``SparseMaskDecoderGraph`` (dynamic N objects and S prompt tokens) of a ``SAM2Base`` to ``path``."""
    import torch
    from torch.export import Dim

    shapes = feature_shapes(model)
    gen = torch.Generator().manual_seed(0)
    n, s = 2, 2  # trace with sizes > 1 so neither dim is specialised
    dim = model.sam_prompt_encoder.embed_dim
    args = (*(torch.randn(shapes[k], generator=gen) for k in FEATURES), torch.randn(n, s, dim, generator=gen))
    objects = Dim(NUM_OBJECTS, min=1, max=max(max_objects, n))
    tokens = Dim("prompt_tokens", min=1, max=max(max_tokens, s))
    dynamic = {name: None for name in FEATURES} | {SPARSE_PROMPT: {0: objects, 1: tokens}}
    export_module(
        SparseMaskDecoderGraph(model).eval(),
        args,
        path,
        input_names=MASK_DECODER_INPUTS,
        output_names=MASK_DECODER_OUTPUTS,
        dynamic_shapes=dynamic,
        opset=opset,
    )
