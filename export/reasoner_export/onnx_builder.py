"""A small helper to write ONNX graphs node by node with weights streamed into an external-data file.

Large initializers are appended to one ``<graph>.onnx.data`` file as they are produced (page-aligned),
and only their location is kept in the in-memory model, so building a multi-GB graph costs about one
weight of memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

#: tensors at least this large go to the external-data file
EXTERNAL_MIN_BYTES = 1024
ALIGN = 4096

#: ONNX opset of the hand-built graphs (TensorRT 10 and every ONNX Runtime >= 1.14 read it) and IR version.
OPSET = 17
IR_VERSION = 8


class ExternalData:
    """Appends raw tensor bytes to ``path`` and returns TensorProtos that point at them."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = open(self.path, "wb")  # noqa: SIM115 (closed in close())
        self.offset = 0
        self.bytes_written = 0

    def add(self, name: str, array: np.ndarray):
        from onnx import TensorProto, helper

        array = np.ascontiguousarray(array)
        pad = (-self.offset) % ALIGN
        if pad:
            self._f.write(b"\0" * pad)
            self.offset += pad
        data = array.tobytes()
        self._f.write(data)
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        t.dims.extend(array.shape)
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.path.name), ("offset", str(self.offset)), ("length", str(len(data)))):
            entry = t.external_data.add()
            entry.key, entry.value = key, value
        self.offset += len(data)
        self.bytes_written += len(data)
        return t

    def move(self, tensor, data: bytes) -> None:
        """Point an existing TensorProto at ``data`` appended to this file (its inline bytes are dropped)."""
        from onnx import TensorProto

        pad = (-self.offset) % ALIGN
        if pad:
            self._f.write(b"\0" * pad)
            self.offset += pad
        self._f.write(data)
        tensor.ClearField("raw_data")
        del tensor.external_data[:]
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.path.name), ("offset", str(self.offset)), ("length", str(len(data)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        self.offset += len(data)
        self.bytes_written += len(data)

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()


class GraphWriter:
    """Collects nodes and initializers; ``weight`` streams big arrays to the external-data file."""

    def __init__(self, data: ExternalData | None):
        self.data = data
        self.nodes: list = []
        self.initializers: list = []
        self.weight_bytes: dict[str, int] = {}
        self._count = 0
        self._consts: dict[tuple, str] = {}

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def op(
        self,
        op_type: str,
        inputs: list[str],
        *,
        name: str | None = None,
        outputs: list[str] | None = None,
        n_out: int = 1,
        domain: str | None = None,
        **attrs,
    ) -> str | list[str]:
        """Add a node; returns its output name (or names when ``n_out > 1``)."""
        from onnx import helper

        node_name = name or self._name(op_type)
        outs = outputs or [f"{node_name}/out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=node_name, domain=domain, **attrs))
        return outs[0] if len(outs) == 1 else outs

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        """A small constant initializer (deduplicated)."""
        from onnx import numpy_helper

        array = np.asarray(array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key in self._consts:
            return self._consts[key]
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        self._consts[key] = name
        return name

    def weight(self, name: str, array: np.ndarray, *, group: str = "weights") -> str:
        """A weight initializer; external when large. ``group`` tallies bytes (e.g. ``"lm_head"``)."""
        from onnx import numpy_helper

        array = np.ascontiguousarray(array)
        if self.data is not None and array.nbytes >= EXTERNAL_MIN_BYTES:
            self.initializers.append(self.data.add(name, array))
        else:
            self.initializers.append(numpy_helper.from_array(array, name))
        self.weight_bytes[group] = self.weight_bytes.get(group, 0) + array.nbytes
        return name

    def model(self, inputs: list, outputs: list, *, graph_name: str, domains: dict[str, int] | None = None):
        from onnx import helper

        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, initializer=self.initializers)
        opsets = [helper.make_opsetid("", OPSET)] + [helper.make_opsetid(d, v) for d, v in (domains or {}).items()]
        model = helper.make_model(graph, opset_imports=opsets, producer_name="segzero-edge")
        model.ir_version = IR_VERSION
        return model
