"""The reasoner's large files, each written without holding it whole: the token embedding table in blocks
of rows, the vision tower traced by the TorchScript exporter, and any exporter graph consolidated into one
page-aligned external-data file. Each long write shows a progress bar on a terminal."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.reasoner.contract import IMAGE_EMBEDS, PIXEL_VALUES

from .checkpoint import QwenCheckpoint, WeightReader
from .memory import release_memory
from .onnx_builder import ExternalData
from .wrappers import load_vision_tower, make_vision_wrapper


def progress_bar(total: int, desc: str, unit: str = "layer"):
    """A progress bar with an estimate on a terminal (tqdm; None when tqdm is missing, silent when not a tty)."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the export extra
        return None
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=None)


def write_embeddings(reader: WeightReader, path: Path, dtype: str, rows_per_block: int = 8192) -> tuple[int, int]:
    """Write the token embedding table as ``path`` (``.npy``, ``dtype``) in blocks of rows: the table is
    never whole in memory. Returns its shape."""
    name = "lm.embed_tokens.weight"
    shape = reader.shape(name)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    bar = progress_bar(shape[0], "token embeddings", unit="row")
    try:
        for start in range(0, shape[0], rows_per_block):
            block = reader.row_block(name, start, start + rows_per_block)
            out[start : start + len(block)] = block
            if bar:
                bar.update(len(block))
        out.flush()
    finally:
        del out
        if bar:
            bar.close()
    return (int(shape[0]), int(shape[1]))


def trace_to_onnx(module: Any, args: tuple, raw: Path, input_names: list[str], output_names: list[str]) -> None:
    """``module(*args)`` to ``raw`` with the TorchScript exporter at opset 17, without gradients; its tracer
    warnings (one per Python branch it freezes) are silenced."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(raw),
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            opset_version=17,
        )


def export_vision(ckpt: QwenCheckpoint, reader: WeightReader, path: Path) -> dict[str, Any]:
    """Export the vision tower for the checkpoint's fixed grid to ``path`` (TorchScript exporter)."""
    import torch

    pre = ckpt.preprocess
    visual = load_vision_tower(ckpt.config, reader)
    wrapper = make_vision_wrapper(visual, pre.grid_thw)
    dummy = torch.zeros(pre.num_patches, pre.patch_dim)
    depth = len(visual.blocks)
    bar = progress_bar(depth + 1, "vision tower", unit="block")  # the traced blocks, then the graph's weights

    def traced(*_: Any) -> None:
        if bar is not None and bar.n < depth:
            bar.update(1)

    hooks = [block.register_forward_hook(traced) for block in visual.blocks]
    try:
        with tempfile.TemporaryDirectory(prefix=".vision-", dir=path.parent) as tmp:
            raw = Path(tmp) / "vision.onnx"
            trace_to_onnx(wrapper, (dummy,), raw, [PIXEL_VALUES], [IMAGE_EMBEDS])
            for hook in hooks:
                hook.remove()
            del wrapper, visual
            release_memory()
            info = consolidate_graph(raw, path)
            if bar is not None:
                bar.update(bar.total - bar.n)
            return info
    finally:
        if bar is not None:
            bar.close()


def consolidate_graph(raw: Path, path: Path, threshold: int = 1 << 30) -> dict[str, Any]:
    """Rewrite the exporter's graph as ``path`` with, for graphs over ``threshold`` bytes, all weights in one
    page-aligned ``path.data`` file, streamed one tensor at a time (the exporter writes one file per tensor
    for graphs over 2 GB)."""
    import onnx

    model = onnx.load(str(raw), load_external_data=False)

    def tensors():  # initializers and tensor attributes (the exporter externalises Constant values too)
        yield from model.graph.initializer
        for node in model.graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t
                elif attr.type == onnx.AttributeProto.TENSORS:
                    yield from attr.tensors

    def is_external(t) -> bool:
        return t.data_location == onnx.TensorProto.EXTERNAL

    def read(t) -> bytes:
        info = {e.key: e.value for e in t.external_data}
        with open(raw.parent / info["location"], "rb") as f:
            f.seek(int(info.get("offset", 0)))
            return f.read(int(info["length"])) if "length" in info else f.read()

    def size(t) -> int:
        if is_external(t):
            info = {e.key: e.value for e in t.external_data}
            if "length" in info:
                return int(info["length"])
            return (raw.parent / info["location"]).stat().st_size - int(info.get("offset", 0))
        return len(t.raw_data)

    total = sum(size(t) for t in tensors())
    has_external = any(is_external(t) for t in tensors())
    external = total > threshold or has_external  # the exporter only writes external data for graphs > 2 GB
    if not external:
        onnx.save_model(onnx.load(str(raw)), str(path))
        return {"file": path.name, "external_data": [], "bytes": total}
    data = ExternalData(path.with_name(path.name + ".data"))
    try:
        for t in tensors():
            blob = read(t) if is_external(t) else t.raw_data
            if len(blob) >= 1024:
                data.move(t, blob)
            elif is_external(t):  # small: back inline
                del t.external_data[:]
                t.data_location = onnx.TensorProto.DEFAULT
                t.raw_data = blob
    finally:
        data.close()
    path.write_bytes(model.SerializeToString())
    return {"file": path.name, "external_data": [data.path.name], "bytes": total}
