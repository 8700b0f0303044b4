"""The engine's weights as float32, for validation: the exported decoder's linear layers dequantized (read one
at a time, ``dequantized_linears``), or run by ONNX Runtime with fp32 activations (the twin graph)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.manifest import Manifest
from segzero_edge.reasoner.contract import COMPONENT, DECODER, HIDDEN_STATES, LOGITS, SEQ, ReasonerSettings

from .quantize import dequantize_rows


def initializer_array(tensor: Any, base_dir: Path) -> np.ndarray:
    """An initializer as a new numpy array; external data is read straight from its file at the recorded
    offset, never through the proto: bytes assigned to a protobuf message stay in its arena until the whole
    model is freed, so loading each layer's weights through ``load_external_data_for_tensor`` kept every
    layer's packed bytes resident (measured: +0.55 GB of peak RSS per 7B decoder layer in validation)."""
    import onnx
    from onnx import external_data_helper, numpy_helper

    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return numpy_helper.to_array(tensor)
    info = external_data_helper.ExternalDataInfo(tensor)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    count = int(np.prod(tensor.dims, dtype=np.int64))
    with open(Path(base_dir) / info.location, "rb") as f:
        f.seek(int(info.offset or 0))
        out = np.fromfile(f, dtype=dtype, count=count)
    if out.size != count:
        raise OSError(f"{Path(base_dir) / info.location} is truncated (initializer {tensor.name!r})")
    return out.reshape(tuple(tensor.dims))


def _graph(engine_root: Path, graph_file: str) -> tuple[Any, dict[str, Any], Callable[[str], np.ndarray]]:
    """The graph without its weights, its initializers by name, and a reader of one initializer's values."""
    import onnx

    path = engine_root / graph_file
    model = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    return model, inits, lambda name: initializer_array(inits[name], path.parent)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _nbits(node: Any, array: Callable[[str], np.ndarray]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """A MatMulNBits node's packed weights ``[N, blocks, block bytes]``, scales ``[N, blocks]``, ``K`` and bits."""
    attrs = _attrs(node)
    n, bits = attrs["N"], attrs["bits"]
    packed = array(node.input[1]).reshape(n, -1, attrs["block_size"] * bits // 8)
    return packed, array(node.input[2]).reshape(n, -1), attrs["K"], bits


def dequantized_linears(engine_root: Path, graph_file: str) -> Iterator[tuple[str, np.ndarray, str]]:
    """``(linear name, W [N, K] float32 as the graph uses it, precision)`` for each linear layer of the exported
    decoder (``layers.3.mlp.up_proj``, ..., ``lm_head``), read from its initializers one at a time."""
    model, inits, array = _graph(engine_root, graph_file)
    for node in model.graph.node:
        base = node.name.rsplit("/", 1)[0]
        if node.op_type == "MatMulNBits":
            packed, scales, k, bits = _nbits(node, array)
            w = dequantize_rows(packed, scales, k, bits)
            del packed, scales
            yield base, w, f"int{bits}"
        elif node.op_type == "MatMul" and node.input[1] in inits:
            yield base, np.ascontiguousarray(array(node.input[1]).T, dtype=np.float32), "fp32"
        elif node.op_type == "Cast" and node.input[0] in inits:
            yield base, np.ascontiguousarray(array(node.input[0]).T, dtype=np.float32), "fp16"


def dequantized_head_blocks(engine_root: Path, graph_file: str, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, W[first : first + rows] float32)`` of the decoder graph's LM head (``[vocab, hidden]``,
    a torch ``Linear`` weight's layout), dequantized block by block: the whole float32 head (2.2 GB for 7B) is
    never in memory."""
    model, _, array = _graph(engine_root, graph_file)
    node = next(n for n in model.graph.node if n.name.rsplit("/", 1)[0] == "lm_head" and n.op_type != "Reshape")
    if node.op_type == "MatMulNBits":
        packed, scales, k, bits = _nbits(node, array)
        for start in range(0, len(packed), rows):
            yield start, dequantize_rows(packed[start : start + rows], scales[start : start + rows], k, bits)
        return
    weight = array(node.input[1] if node.op_type == "MatMul" else node.input[0])  # [K, N] fp32, or fp16 (Cast)
    for start in range(0, weight.shape[1], rows):
        yield start, np.ascontiguousarray(weight[:, start : start + rows].T, dtype=np.float32)


def load_engine_weights_into(model: Any, engine_root: Path, manifest: Manifest) -> int:
    """Overwrite a transformers Qwen2.5-VL model's LM linears and embeddings with the engine's values
    (dequantized). Returns the number of tensors replaced. (Tests run whole generations with it; the export's
    validation streams the same weights layer by layer, ``reference_stream.EngineWeights``.)"""
    import torch

    s = ReasonerSettings.from_mapping(manifest.component(COMPONENT))
    lm = model.model.language_model
    count = 0
    with torch.no_grad():
        for name, w, _ in dequantized_linears(engine_root, manifest.graph(DECODER).file):
            if name == "lm_head":
                model.lm_head.weight = torch.nn.Parameter(torch.from_numpy(w))  # unties from the embeddings
            else:
                _, i, block, proj = name.split(".")
                getattr(getattr(lm.layers[int(i)], block), proj).weight.copy_(torch.from_numpy(w))
            count += 1
            del w
        table = np.asarray(np.load(engine_root / s.embeddings.file, mmap_mode="r"), dtype=np.float32)
        lm.embed_tokens.weight = torch.nn.Parameter(torch.from_numpy(table))
    return count + 1


#: ORT's CPU MatMulNBits has no fast path for 8-bit weights with fp32 activations: without
#: ``accuracy_level`` one step of a 7B-shaped int8 LM head (152,064 x 3,584) took 1,511 ms against 18 ms
#: with it (4-bit nodes without it: 24 ms). The twin therefore runs 8-bit layers as a plain fp32 MatMul of
#: the dequantized weights, the very matrices phase 3 loads into torch.
TWIN_MATMUL_BITS = (8,)


def _hidden_states_only(model: Any) -> None:
    """Make ``model`` (the decoder graph) return ``hidden_states`` (the final RMSNorm's output at every
    position, the LM head's input) and the present KV cache, without the LM head: ``logits`` and every node
    and initializer that only fed it are removed."""
    import onnx

    graph = model.graph
    if not any(o.name == HIDDEN_STATES for o in graph.output):
        last = next(n for n in graph.node if n.name == "LastPosition")
        graph.node.append(onnx.helper.make_node("Identity", [last.input[0]], [HIDDEN_STATES], name="HiddenStates"))
        graph.output.append(
            onnx.helper.make_tensor_value_info(HIDDEN_STATES, onnx.TensorProto.FLOAT, [1, SEQ, "hidden"])
        )
    keep = [o for o in graph.output if o.name != LOGITS]
    del graph.output[:]
    graph.output.extend(keep)
    needed = {o.name for o in graph.output}
    live = []
    for node in reversed(list(graph.node)):  # nodes are topologically sorted
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(live))
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)


@contextlib.contextmanager
def fp32_activation_twin(engine_root: Path, graph_file: str) -> Iterator[Path | None]:
    """A copy of the decoder graph (sharing its external data) that computes with fp32 activations and
    returns ``hidden_states`` instead of logits (no LM head: validation projects the hidden states with the
    LM head's dequantized weights, in torch, at the scored positions only): no MatMulNBits
    ``accuracy_level``, and 8-bit MatMulNBits replaced by MatMul over the dequantized weights (written to a
    temporary data file next to the graph). Yields None when the body has neither; both temporary files are
    removed on exit."""
    import onnx

    path = engine_root / graph_file
    model, inits, array = _graph(engine_root, graph_file)
    _hidden_states_only(model)
    inits.clear()  # the reader looks up this dict: keep only what the hidden states still need
    inits.update((t.name, t) for t in model.graph.initializer)
    twin = path.with_name(".validation-twin-" + path.name)
    data = path.with_name(".validation-twin-" + path.name + ".data")
    changed = False
    try:
        with open(data, "wb") as out:
            for i, node in enumerate(list(model.graph.node)):
                if node.op_type != "MatMulNBits":
                    continue
                attrs = _attrs(node)
                if attrs["bits"] in TWIN_MATMUL_BITS:
                    packed, scales, k, bits = _nbits(node, array)
                    w = dequantize_rows(packed, scales, k, bits)
                    del packed, scales
                    weight = np.ascontiguousarray(w.T)  # [K, N]: Y = X @ W^T
                    del w
                    name = f"{node.name}/twin_weight"
                    tensor = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=list(weight.shape))
                    tensor.data_location = onnx.TensorProto.EXTERNAL
                    for key, value in (("location", data.name), ("offset", out.tell()), ("length", weight.nbytes)):
                        entry = tensor.external_data.add()
                        entry.key, entry.value = key, str(value)
                    out.write(weight.tobytes())
                    del weight
                    model.graph.initializer.append(tensor)
                    for unused in node.input[1:]:  # the packed weights, scales (and zero points) of the node
                        if unused in inits:
                            model.graph.initializer.remove(inits.pop(unused))
                    matmul = onnx.helper.make_node("MatMul", [node.input[0], name], list(node.output), name=node.name)
                    model.graph.node.remove(node)
                    model.graph.node.insert(i, matmul)
                    changed = True
                elif "accuracy_level" in attrs:
                    keep = [a for a in node.attribute if a.name != "accuracy_level"]
                    del node.attribute[:]
                    node.attribute.extend(keep)
                    changed = True
        if not changed:
            yield None
            return
        twin.write_bytes(model.SerializeToString())
        yield twin
    finally:
        twin.unlink(missing_ok=True)
        data.unlink(missing_ok=True)
