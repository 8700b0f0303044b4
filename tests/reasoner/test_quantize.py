"""Block-wise INT4/INT8: our use of ONNX Runtime's kernel equals the written-out spec, ORT's own quantizer,
and what MatMulNBits computes."""

from __future__ import annotations

import numpy as np
import pytest

from segzero_edge.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


from segzero_edge.export.reasoner_export.quantize import (
    QuantSpec,
    dequantize_blockwise,
    quantize_blockwise,
    quantize_blockwise_numpy,
)

CASES = [(4, 256, 48, 32), (4, 200, 24, 64), (8, 256, 40, 128), (8, 96, 8, 16), (4, 128, 16, 128)]


@pytest.mark.parametrize(("bits", "k", "n", "bs"), CASES)
def test_kernel_equals_numpy_spec(bits, k, n, bs):
    rng = np.random.default_rng(k + n)
    w = rng.standard_normal((k, n)).astype(np.float32)
    w[:bs, 0] = 0.0  # an all-zero block
    spec = QuantSpec(bits=bits, block_size=bs)
    packed, scales = quantize_blockwise(w, spec)
    ref_packed, ref_scales = quantize_blockwise_numpy(w, spec)
    kb = -(-k // bs)
    assert packed.shape == (n, kb, bs * bits // 8) and scales.shape == (n, kb)
    assert np.array_equal(scales, ref_scales)
    # the bytes equal the spec everywhere but the zero padding of the last block (never read)
    assert np.array_equal(
        dequantize_blockwise(packed, scales, k, bits), dequantize_blockwise(ref_packed, ref_scales, k, bits)
    )
    if k % bs == 0:
        assert np.array_equal(packed, ref_packed)


@pytest.mark.parametrize(("bits", "k", "n", "bs"), CASES)
def test_round_trip_error_is_within_half_a_step(bits, k, n, bs):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed, scales = quantize_blockwise(w, QuantSpec(bits=bits, block_size=bs))
    deq = dequantize_blockwise(packed, scales, k, bits)
    step = np.repeat(np.abs(scales).T, bs, axis=0)[:k]  # per-element |scale|
    signed = np.repeat(scales.T, bs, axis=0)[:k]
    lo, hi = np.minimum(-8 * signed, 7 * signed), np.maximum(-8 * signed, 7 * signed)
    lo, hi = (
        (lo, hi) if bits == 4 else (np.minimum(-128 * signed, 127 * signed), np.maximum(-128 * signed, 127 * signed))
    )
    inside = (w >= lo) & (w <= hi)
    err = np.abs(deq - w)
    assert np.all(err[inside] <= step[inside] / 2 + 1e-6)  # rounding
    assert np.all(err <= step + 1e-6)  # clipping at the side opposite the block's extreme: < one step
    # the block's largest magnitude maps exactly onto -2^(b-1) * scale
    blocks = np.pad(w, ((0, -k % bs), (0, 0))).T.reshape(n, -1, bs)
    top = np.take_along_axis(blocks, np.abs(blocks).argmax(-1)[..., None], -1)[..., 0]
    assert np.allclose(scales * -(2 ** (bits - 1)), top)


def _matmul_model(w: np.ndarray):
    from onnx import TensorProto, helper, numpy_helper

    k, n = w.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s", n])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("bits", [4, 8])
def test_same_bytes_as_onnxruntime_matmulnbits_quantizer(bits):
    from onnx import numpy_helper
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    rng = np.random.default_rng(bits)
    w = rng.standard_normal((256, 64)).astype(np.float32)
    q = MatMulNBitsQuantizer(
        _matmul_model(w), algo_config=DefaultWeightOnlyQuantConfig(block_size=64, is_symmetric=True, bits=bits)
    )
    q.process()
    inits = {t.name: numpy_helper.to_array(t) for t in q.model.model.graph.initializer}
    node = next(nd for nd in q.model.model.graph.node if nd.op_type == "MatMulNBits")
    packed, scales = quantize_blockwise(w, QuantSpec(bits=bits, block_size=64))
    assert np.array_equal(inits[node.input[1]].reshape(packed.shape), packed)
    assert np.array_equal(inits[node.input[2]].reshape(scales.shape), scales)
    assert len(node.input) == 3  # symmetric: default zero point, no zero-point tensor


@pytest.mark.parametrize(("bits", "accuracy_level", "tol"), [(4, 0, 2e-5), (8, 0, 2e-5), (4, 4, 0.05), (8, 4, 0.05)])
def test_matmulnbits_computes_x_times_dequantized_weight(bits, accuracy_level, tol):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    k, n, bs = 320, 96, 32
    w = rng.standard_normal((k, n)).astype(np.float32)
    packed, scales = quantize_blockwise(w, QuantSpec(bits=bits, block_size=bs))
    attrs = {"K": k, "N": n, "bits": bits, "block_size": bs}
    if accuracy_level:
        attrs["accuracy_level"] = accuracy_level
    graph = helper.make_graph(
        [helper.make_node("MatMulNBits", ["x", "B", "S"], ["y"], domain="com.microsoft", **attrs)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "s", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "s", n])],
        initializer=[numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales.reshape(-1), "S")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((1, 5, k)).astype(np.float32)
    ref = x @ dequantize_blockwise(packed, scales, k, bits)
    got = sess.run(None, {"x": x})[0]
    assert np.abs(got - ref).max() <= tol * np.abs(ref).max()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bits": 3},
        {"block_size": 24},
        {"block_size": 8},
        {"accuracy_level": 7},
        {"symmetric": False},
        {"block_size": True},
    ],
)
def test_invalid_specs_are_refused(kwargs):
    with pytest.raises(ConfigError):
        QuantSpec(**kwargs)
