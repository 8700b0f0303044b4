"""The exported mask decoder in the form ONNX Runtime's CPU provider runs fast (see
export/sam2_export/wrappers.py and segzero_edge.ort.CPU_DISABLED_OPTIMIZERS)."""

from __future__ import annotations

from collections import Counter

from segzero_edge.ort import CPU_DISABLED_OPTIMIZERS, Device, disabled_optimizers, provider_list
from segzero_edge.sam2.contract import DECODER


def _optimized_ops(path, tmp_path, disabled) -> Counter:
    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    return Counter(n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node)


def test_upscaling_layernorm_is_one_node_and_gelu_fuses(engine_dir, manifest, tmp_path):
    import onnx

    path = engine_dir / manifest.graph(DECODER).file
    exported = Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    # Transformer norms + the upscaling LayerNorm2d as one channels-last LayerNormalization.
    assert exported["LayerNormalization"] == 10
    # Only the two LayerNorm2d of the (optional) previous-mask branch keep the mean/variance form.
    assert exported["ReduceMean"] == 4
    optimized = _optimized_ops(path, tmp_path, list(CPU_DISABLED_OPTIMIZERS))
    assert optimized["Gelu"] == 2  # both upscaling GELUs fused (the mask branch's two stay Erf)
    assert optimized["SkipLayerNormalization"] == 0


def test_cpu_sessions_leave_out_skip_layernorm_fusion(engine_dir, manifest, tmp_path):
    path = engine_dir / manifest.graph(DECODER).file
    assert "SkipLayerNormFusion" in CPU_DISABLED_OPTIMIZERS
    # ONNX Runtime's default would fuse: the setting is what keeps the slow kernel out.
    assert _optimized_ops(path, tmp_path, None)["SkipLayerNormalization"] > 0
    cpu = provider_list(Device("cpu"), ["CPUExecutionProvider"])
    assert disabled_optimizers(cpu) == list(CPU_DISABLED_OPTIMIZERS)
    assert _optimized_ops(path, tmp_path, disabled_optimizers(cpu))["SkipLayerNormalization"] == 0
    # GPU providers keep every fusion (their SkipLayerNormalization kernels are the fast path).
    gpu = provider_list(Device("cuda"), ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert disabled_optimizers(gpu) is None
