"""``torch.onnx.export`` (dynamo) of the four tracker graphs (``wrappers.py``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from segzero_edge.tracker.contract import (
    ATTENTION_INPUTS,
    ATTENTION_OUTPUTS,
    BINARIZE,
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_INPUTS,
    ENCODER_OUTPUTS,
    MASK_DECODER,
    MASK_INPUTS,
    MASK_LOGITS,
    MASK_PROMPT,
    MASK_PROMPT_INPUTS,
    MASK_PROMPT_OUTPUTS,
    MEMORY,
    MEMORY_ATTENTION,
    MEMORY_ENCODER,
    NUM_OBJECTS,
    NUM_POINTS,
    OBJ_PTRS,
    OBJECT_SCORE_LOGITS,
    PIX_FEAT,
    POINT_COORDS,
    POINT_LABELS,
)

from ..sam2_export.onnx_export import export_module
from .wrappers import MaskPromptGraph, MemoryAttentionGraph, MemoryEncoderGraph, TrackDecoderGraph


def export_graphs(
    model,
    paths: Mapping[str, Path],
    *,
    opset: int,
    max_objects: int,
    max_points: int,
    on_graph: Callable[[], object] = lambda: None,
) -> None:
    """Write ``tracker.memory_attention``, ``tracker.mask_decoder``, ``tracker.memory_encoder`` and
    ``tracker.mask_prompt`` to ``paths[name]``, traced with 2 objects (and 3 points) so that neither dim is
    specialised."""
    import torch
    from torch.export import Dim

    gen = torch.Generator().manual_seed(0)
    c, d, m = int(model.hidden_dim), int(model.mem_dim), int(model.num_maskmem)
    k = int(model.max_obj_ptrs_in_encoder)
    side, s = int(model.sam_prompt_encoder.image_embedding_size[0]), int(model.image_size)
    r = s // 4
    n, p = 2, 3
    objects = Dim(NUM_OBJECTS, min=1, max=max(max_objects, n))
    points = Dim(NUM_POINTS, min=1, max=max(max_points, p))
    dec = model.sam_mask_decoder
    embed = torch.randn(1, c, side, side, generator=gen)

    valid = torch.ones(m, dtype=torch.bool)
    valid[m - 2 :] = False
    ptr_valid = torch.ones(k, dtype=torch.bool)
    ptr_valid[k // 2 :] = False
    attention_args = (
        embed,
        torch.randn(n, m, d, side, side, generator=gen),
        torch.arange(m, dtype=torch.int64),
        valid,
        torch.randn(n, k, c, generator=gen),
        torch.rand(k, generator=gen),
        ptr_valid,
    )
    decoder_args = (
        torch.randn(n, c, side, side, generator=gen),
        torch.randn(1, dec.conv_s0.out_channels, 4 * side, 4 * side, generator=gen),
        torch.randn(1, dec.conv_s1.out_channels, 2 * side, 2 * side, generator=gen),
        torch.rand(n, p, 2, generator=gen) * s,
        torch.tensor([[2.0, 3.0, 1.0], [1.0, 0.0, -1.0]]),
    )
    encoder_args = (
        embed,
        torch.randn(n, 1, r, r, generator=gen) * 10,
        torch.tensor([[1.0], [-1.0]]),
        torch.tensor([True, False]),
    )
    mask = torch.zeros(n, 1, s, s)
    mask[0, :, s // 4 : s // 2, s // 3 : s // 2] = 1.0  # one object with a mask, one without
    mask_prompt_args = (embed, decoder_args[1], decoder_args[2], mask)
    # name -> (module, example inputs, input names, output names, dynamic dims of the inputs that have some)
    graphs = {
        MEMORY_ATTENTION: (
            MemoryAttentionGraph(model),
            attention_args,
            ATTENTION_INPUTS,
            ATTENTION_OUTPUTS,
            {MEMORY: {0: objects}, OBJ_PTRS: {0: objects}},
        ),
        MASK_DECODER: (
            TrackDecoderGraph(model),
            decoder_args,
            DECODER_INPUTS,
            DECODER_OUTPUTS,
            {PIX_FEAT: {0: objects}, POINT_COORDS: {0: objects, 1: points}, POINT_LABELS: {0: objects, 1: points}},
        ),
        MEMORY_ENCODER: (
            MemoryEncoderGraph(model),
            encoder_args,
            ENCODER_INPUTS,
            ENCODER_OUTPUTS,
            {MASK_LOGITS: {0: objects}, OBJECT_SCORE_LOGITS: {0: objects}, BINARIZE: {0: objects}},
        ),
        MASK_PROMPT: (
            MaskPromptGraph(model),
            mask_prompt_args,
            MASK_PROMPT_INPUTS,
            MASK_PROMPT_OUTPUTS,
            {MASK_INPUTS: {0: objects}},
        ),
    }
    for name, (module, args, inputs, outputs, dims) in graphs.items():
        dynamic = dict.fromkeys(inputs)
        dynamic.update(dims)
        export_module(
            module.eval(),
            args,
            paths[name],
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=dynamic,
            opset=opset,
        )
        on_graph()
