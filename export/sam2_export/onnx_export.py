"""``torch.onnx.export`` (dynamo) of the two SAM2 graphs, and a check of their I/O against the contract."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from segzero_edge.errors import ExportError
from segzero_edge.manifest import GraphSpec
from segzero_edge.sam2.contract import (
    DECODER_INPUTS,
    DECODER_OUTPUTS,
    ENCODER_INPUTS,
    FEATURES,
    HAS_MASK_INPUT,
    HIGH_RES_FEATS_0,
    HIGH_RES_FEATS_1,
    IMAGE_EMBED,
    MASK_INPUT,
    NUM_OBJECTS,
    NUM_POINTS,
    POINT_COORDS,
    POINT_LABELS,
)

from .wrappers import ImageEncoderGraph, MaskDecoderGraph

log = logging.getLogger(__name__)


def feature_shapes(model) -> dict[str, tuple[int, ...]]:
    """Shapes of the encoder outputs, from the model (S = ``model.image_size``)."""
    s = model.image_size
    dec = model.sam_mask_decoder
    return {
        IMAGE_EMBED: (
            1,
            model.sam_prompt_encoder.embed_dim,
            *model.sam_prompt_encoder.image_embedding_size,
        ),
        HIGH_RES_FEATS_0: (1, dec.conv_s0.out_channels, s // 4, s // 4),
        HIGH_RES_FEATS_1: (1, dec.conv_s1.out_channels, s // 8, s // 8),
    }


@contextlib.contextmanager
def _quiet_exporter():
    """The dynamo exporter prints progress to stdout and warns about torchvision ops; log instead."""
    buf = io.StringIO()
    chatty = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [lg.level for lg in chatty]
    try:
        for lg in chatty:  # torch.onnx warns that torchvision ops cannot be registered: not used here
            lg.setLevel(logging.ERROR if lg.name == "torch.onnx" else logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(chatty, levels):
            lg.setLevel(level)
        for line in buf.getvalue().splitlines():
            log.debug("torch.onnx: %s", line)


def export_module(module, args: tuple, path: Path, *, input_names, output_names, dynamic_shapes, opset: int) -> None:
    import torch

    with _quiet_exporter(), torch.no_grad():
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                external_data=False,
                opset_version=opset,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
        except OSError:
            raise  # a full disk or unwritable folder: reported as such by the caller
        except Exception as exc:  # the exporter raises many types; keep the cause
            raise ExportError(
                f"torch.onnx.export failed for {path.name}: {exc}",
                hint="report this with the torch version and the SAM2 config",
            ) from exc
    log.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)


def export_image_encoder(model, path: Path, *, opset: int) -> None:
    """Export ``ImageEncoderGraph`` (batch 1, fixed S x S input) to ``path``."""
    import torch

    shapes = feature_shapes(model)
    sizes = [shapes[n][2:] for n in (HIGH_RES_FEATS_0, HIGH_RES_FEATS_1, IMAGE_EMBED)]
    s = model.image_size
    export_module(
        ImageEncoderGraph(model, sizes).eval(),
        (torch.randn(1, 3, s, s),),
        path,
        input_names=ENCODER_INPUTS,
        output_names=FEATURES,
        dynamic_shapes=None,
        opset=opset,
    )


def export_mask_decoder(model, path: Path, *, opset: int, max_objects: int, max_points: int) -> None:
    """Export ``MaskDecoderGraph`` with dynamic N objects and P points to ``path``."""
    import torch
    from torch.export import Dim

    shapes = feature_shapes(model)
    r = model.image_size // 4
    n, p = 2, 3  # trace with sizes > 1 so neither dim is specialised
    gen = torch.Generator().manual_seed(0)
    args = (
        *(torch.randn(shapes[k], generator=gen) for k in FEATURES),
        torch.rand(n, p, 2, generator=gen) * model.image_size,
        torch.tensor([[2.0, 3.0, 1.0], [1.0, 0.0, 1.0]]),
        torch.zeros(n, 1, r, r),
        torch.zeros(n),
    )
    objects = Dim(NUM_OBJECTS, min=1, max=max(max_objects, n))
    points = Dim(NUM_POINTS, min=1, max=max(max_points, p))
    dynamic = {
        IMAGE_EMBED: None,
        HIGH_RES_FEATS_0: None,
        HIGH_RES_FEATS_1: None,
        POINT_COORDS: {0: objects, 1: points},
        POINT_LABELS: {0: objects, 1: points},
        MASK_INPUT: {0: objects},
        HAS_MASK_INPUT: {0: objects},
    }
    export_module(
        MaskDecoderGraph(model).eval(),
        args,
        path,
        input_names=DECODER_INPUTS,
        output_names=DECODER_OUTPUTS,
        dynamic_shapes=dynamic,
        opset=opset,
    )


def check_onnx_io(path: Path, spec: GraphSpec) -> None:
    """Compare an exported graph's inputs/outputs (names, dtypes, dims) with its manifest entry.

    Raises:
        ExportError: any difference (the exporter and the contract disagree).
    """
    import onnx

    dtype_names = {
        onnx.TensorProto.FLOAT: "float32",
        onnx.TensorProto.FLOAT16: "float16",
        onnx.TensorProto.INT64: "int64",
        onnx.TensorProto.INT32: "int32",
        onnx.TensorProto.BOOL: "bool",
    }
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values):
        out = []
        for v in values:
            t = v.type.tensor_type
            dims = tuple(d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim)
            out.append((v.name, dtype_names.get(t.elem_type, str(t.elem_type)), dims))
        return out

    got = (describe(graph.input), describe(graph.output))
    want = (
        [(t.name, t.dtype, t.shape) for t in spec.inputs],
        [(t.name, t.dtype, t.shape) for t in spec.outputs],
    )
    if got != want:
        raise ExportError(
            f"{path.name}: exported I/O {got} differs from the contract {want}",
            hint="the exporter renamed or re-shaped a tensor; fix the export before shipping",
        )
