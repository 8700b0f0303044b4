"""The Qwen2.5-VL language model as an ONNX decoder graph with a KV cache, written layer by layer.

Graph I/O: ``segzero_edge.reasoner.contract`` (``decoder_io``); the graph also accepts ``past = 0``.

It computes exactly what ``transformers``' ``Qwen2_5_VLTextModel`` + ``lm_head`` compute (RMSNorm in
float32, M-RoPE with ``mrope_section``, grouped-query attention with a causal + padding mask, SwiGLU MLP),
with standard ONNX ops (opset 17) that ONNX Runtime fuses and TensorRT parses. Linear layers are
``MatMul`` (fp32; fp16 weights behind a ``Cast``) or ``com.microsoft.MatMulNBits`` (int4/int8, block-wise
symmetric, see ``quantize.py``). Weights are read one at a time from the checkpoint and streamed into
``decoder.onnx.data``: peak memory is about the largest single weight (the LM head), not the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segzero_edge.errors import ConfigError
from segzero_edge.reasoner.contract import (
    ATTENTION_MASK,
    HIDDEN_STATES,
    INPUTS_EMBEDS,
    LOGITS,
    POSITION_IDS,
    TextSettings,
    decoder_io,
    past_name,
    present_name,
)

from .onnx_builder import ExternalData, GraphWriter
from .quantize import QuantSpec, quantize_blockwise

log = logging.getLogger(__name__)

LINEAR_PRECISIONS = ("fp32", "fp16", "int8", "int4")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class DecoderPrecision:
    """Weight precision of the decoder's linear layers.

    Attributes:
        body: precision of q/k/v/o/gate/up/down: ``fp32``, ``fp16``, ``int8`` or ``int4``.
        lm_head: precision of the LM head (same choices).
        quant: block settings for the int8/int4 layers (``bits`` is taken from each layer's precision).
        int8_layers: decoder layers (0-based) whose q/k/v/o/gate/up/down stay INT8 when ``body`` is
            ``int4`` (mixed precision: a layer that INT4 hurts most, such as the first, at 2x its bytes).
    """

    body: str = "fp32"
    lm_head: str = "fp32"
    quant: QuantSpec = field(default_factory=QuantSpec)
    int8_layers: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for which in ("body", "lm_head"):
            if getattr(self, which) not in LINEAR_PRECISIONS:
                raise ConfigError(
                    f"unsupported {which} precision {getattr(self, which)!r}",
                    hint=f"use one of {', '.join(LINEAR_PRECISIONS)}",
                )
        layers = self.int8_layers
        if (
            not isinstance(layers, tuple)
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers)
            or len(set(layers)) != len(layers)
        ):
            raise ConfigError(f"int8_layers must be a tuple of distinct layer indices >= 0, got {layers!r}")
        if layers and self.body != "int4":
            raise ConfigError(
                f"int8_layers only applies to int4 exports (body is {self.body})",
                hint="drop int8_layers, or export with weights int4",
            )

    def layer(self, i: int) -> str:
        """Precision of decoder layer ``i``'s linear layers."""
        return "int8" if i in self.int8_layers else self.body

    def spec(self, precision: str) -> QuantSpec:
        return QuantSpec(
            bits=4 if precision == "int4" else 8,
            block_size=self.quant.block_size,
            accuracy_level=self.quant.accuracy_level,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"body": self.body, "lm_head": self.lm_head}
        for which in ("body", "lm_head"):
            p = getattr(self, which)
            if p in ("int4", "int8"):
                out[f"{which}_quantization"] = self.spec(p).to_dict()
        if self.int8_layers:
            out["int8_layers"] = sorted(self.int8_layers)
        return out


class _Decoder:
    def __init__(self, g: GraphWriter, shape: TextSettings, precision: DecoderPrecision):
        self.g, self.s, self.p = g, shape, precision

    def linear(
        self,
        x: str,
        w_out_in: np.ndarray,
        name: str,
        precision: str,
        bias: np.ndarray | None = None,
        group: str = "body",
    ) -> str:
        g = self.g
        n, k = w_out_in.shape
        if precision in ("int4", "int8"):
            spec = self.p.spec(precision)
            packed, scales = quantize_blockwise(w_out_in.T, spec)
            b = g.weight(f"{name}.weight_q{spec.bits}", packed, group=group)
            s = g.weight(f"{name}.scales", scales.reshape(-1), group=group)
            attrs = {"K": k, "N": n, "bits": spec.bits, "block_size": spec.block_size}
            if spec.accuracy_level:
                attrs["accuracy_level"] = spec.accuracy_level
            y = g.op("MatMulNBits", [x, b, s], name=f"{name}/MatMulNBits", domain="com.microsoft", **attrs)
        elif precision == "fp16":
            w = g.weight(f"{name}.weight_fp16", w_out_in.T.astype(np.float16), group=group)
            y = g.op("MatMul", [x, g.op("Cast", [w], name=f"{name}/Cast", to=1)], name=f"{name}/MatMul")
        else:
            w = g.weight(f"{name}.weight", np.ascontiguousarray(w_out_in.T, dtype=np.float32), group=group)
            y = g.op("MatMul", [x, w], name=f"{name}/MatMul")
        if bias is not None:
            y = g.op("Add", [y, g.weight(f"{name}.bias", bias.astype(np.float32), group=group)], name=f"{name}/Add")
        return y

    def unsqueeze(self, x: str, axis: int, name: str) -> str:
        return self.g.op("Unsqueeze", [x, self.g.const(np.array([axis], np.int64))], name=name)

    def rms_norm(self, x: str, weight: np.ndarray, name: str) -> str:
        g = self.g
        sq = g.op("Pow", [x, g.const(np.array(2.0, np.float32))], name=f"{name}/Pow")
        var = g.op("ReduceMean", [sq], name=f"{name}/ReduceMean", axes=[-1], keepdims=1)
        std = g.op(
            "Sqrt",
            [g.op("Add", [var, g.const(np.array(self.s.rms_norm_eps, np.float32))], name=f"{name}/AddEps")],
            name=f"{name}/Sqrt",
        )
        normed = g.op("Mul", [x, g.op("Reciprocal", [std], name=f"{name}/Reciprocal")], name=f"{name}/MulInv")
        return g.op(
            "Mul",
            [g.weight(f"{name}.weight", weight.astype(np.float32), group="norms"), normed],
            name=f"{name}/MulWeight",
        )

    def rotary(self, position_ids: str, inv_freq: np.ndarray) -> tuple[str, str]:
        """cos, sin ``[1, 1, seq, head_dim]`` from ``position_ids [3, 1, seq]`` (HF's M-RoPE recomposition)."""
        g, s = self.g, self.s
        half = s.head_dim // 2
        pos = self.unsqueeze(g.op("Cast", [position_ids], name="rope/Cast", to=1), -1, "rope/Unsqueeze")  # [3,1,seq,1]
        freqs = g.op("Mul", [pos, g.const(inv_freq.astype(np.float32).reshape(half), "inv_freq")], name="rope/Mul")
        onehot = np.zeros((3, 1, 1, half), np.float32)
        start = 0
        for i, width in enumerate(s.mrope_section):
            onehot[i % 3, 0, 0, start : start + width] = 1.0
            start += width
        picked = g.op(
            "ReduceSum",
            [
                g.op("Mul", [freqs, g.const(onehot, "mrope_select")], name="rope/Select"),
                g.const(np.array([0], np.int64)),
            ],
            name="rope/ReduceSum",
            keepdims=0,
        )
        emb = g.op("Concat", [picked, picked], name="rope/Concat", axis=-1)  # [1,seq,hd]
        cos = self.unsqueeze(g.op("Cos", [emb], name="rope/Cos"), 1, "rope/CosU")
        sin = self.unsqueeze(g.op("Sin", [emb], name="rope/Sin"), 1, "rope/SinU")
        return cos, sin

    def apply_rotary(self, x: str, cos: str, sin: str, name: str) -> str:
        g = self.g
        half = self.s.head_dim // 2
        x1 = g.op(
            "Slice",
            [
                x,
                g.const(np.array([0], np.int64)),
                g.const(np.array([half], np.int64)),
                g.const(np.array([-1], np.int64)),
            ],
            name=f"{name}/SliceLo",
        )
        x2 = g.op(
            "Slice",
            [
                x,
                g.const(np.array([half], np.int64)),
                g.const(np.array([2 * half], np.int64)),
                g.const(np.array([-1], np.int64)),
            ],
            name=f"{name}/SliceHi",
        )
        rot = g.op("Concat", [g.op("Neg", [x2], name=f"{name}/Neg"), x1], name=f"{name}/RotHalf", axis=-1)
        return g.op(
            "Add",
            [g.op("Mul", [x, cos], name=f"{name}/MulCos"), g.op("Mul", [rot, sin], name=f"{name}/MulSin")],
            name=f"{name}/Add",
        )

    def allowed_mask(self, inputs_embeds: str, attention_mask: str) -> str:
        """bool ``[seq, total]``: key j is visible to query i iff ``j <= past + i`` and ``attention_mask[j]``."""
        g = self.g
        seq = g.op(
            "Squeeze", [g.op("Shape", [inputs_embeds], name="mask/ShapeSeq", start=1, end=2)], name="mask/SeqScalar"
        )
        total = g.op(
            "Squeeze",
            [g.op("Shape", [attention_mask], name="mask/ShapeTotal", start=1, end=2)],
            name="mask/TotalScalar",
        )
        past = g.op("Sub", [total, seq], name="mask/Past")
        one = g.const(np.array(1, np.int64))
        k_idx = g.op("Range", [g.const(np.array(0, np.int64)), total, one], name="mask/KeyIdx")
        q_idx = g.op("Range", [past, total, one], name="mask/QueryIdx")
        causal = g.op(
            "LessOrEqual",
            [self.unsqueeze(k_idx, 0, "mask/KeyRow"), self.unsqueeze(q_idx, 1, "mask/QueryCol")],
            name="mask/Causal",
        )
        pad = g.op("Cast", [attention_mask], name="mask/Pad", to=9)  # bool [1,total]
        return g.op("And", [causal, pad], name="mask/Allowed")

    def layer(self, i: int, x: str, get: Callable[[str], np.ndarray], cos: str, sin: str, allowed: str) -> str:
        g, s = self.g, self.s
        pre = f"lm.layers.{i}"
        kv, heads, hd = s.num_kv_heads, s.num_heads, s.head_dim
        groups = heads // kv
        h = self.rms_norm(x, get(f"{pre}.input_layernorm.weight"), f"layers.{i}.input_layernorm")
        proj = {}
        for which in ("q_proj", "k_proj", "v_proj"):
            proj[which] = self.linear(
                h,
                get(f"{pre}.self_attn.{which}.weight"),
                f"layers.{i}.self_attn.{which}",
                self.p.layer(i),
                bias=get(f"{pre}.self_attn.{which}.bias"),
            )

        def heads_first(t: str, n: int, tag: str) -> str:
            r = g.op("Reshape", [t, g.const(np.array([1, -1, n, hd], np.int64))], name=f"layers.{i}/{tag}/Reshape")
            return g.op("Transpose", [r], name=f"layers.{i}/{tag}/Transpose", perm=[0, 2, 1, 3])

        q = self.apply_rotary(heads_first(proj["q_proj"], heads, "q"), cos, sin, f"layers.{i}/q_rope")
        k = self.apply_rotary(heads_first(proj["k_proj"], kv, "k"), cos, sin, f"layers.{i}/k_rope")
        v = heads_first(proj["v_proj"], kv, "v")
        k_all = g.op(
            "Concat", [past_name(i, "key"), k], outputs=[present_name(i, "key")], name=f"layers.{i}/PresentKey", axis=2
        )
        v_all = g.op(
            "Concat",
            [past_name(i, "value"), v],
            outputs=[present_name(i, "value")],
            name=f"layers.{i}/PresentValue",
            axis=2,
        )
        q5 = g.op("Reshape", [q, g.const(np.array([1, kv, groups, -1, hd], np.int64))], name=f"layers.{i}/q5")
        k_t = g.op(
            "Transpose", [self.unsqueeze(k_all, 2, f"layers.{i}/k5")], name=f"layers.{i}/kT", perm=[0, 1, 2, 4, 3]
        )
        scores = g.op(
            "Mul",
            [g.op("MatMul", [q5, k_t], name=f"layers.{i}/QK"), g.const(np.array(hd**-0.5, np.float32))],
            name=f"layers.{i}/Scale",
        )
        scores = g.op(
            "Where", [allowed, scores, g.const(np.array(np.finfo(np.float32).min, np.float32))], name=f"layers.{i}/Mask"
        )
        probs = g.op("Softmax", [scores], name=f"layers.{i}/Softmax", axis=-1)
        ctx = g.op(
            "MatMul", [probs, self.unsqueeze(v_all, 2, f"layers.{i}/v5")], name=f"layers.{i}/PV"
        )  # [1,kv,groups,seq,hd]
        ctx = g.op("Reshape", [ctx, g.const(np.array([1, heads, -1, hd], np.int64))], name=f"layers.{i}/ctx4")
        ctx = g.op("Transpose", [ctx], name=f"layers.{i}/ctxT", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, g.const(np.array([1, -1, heads * hd], np.int64))], name=f"layers.{i}/ctx3")
        o = self.linear(ctx, get(f"{pre}.self_attn.o_proj.weight"), f"layers.{i}.self_attn.o_proj", self.p.layer(i))
        x = g.op("Add", [x, o], name=f"layers.{i}/Residual1")
        h = self.rms_norm(x, get(f"{pre}.post_attention_layernorm.weight"), f"layers.{i}.post_attention_layernorm")
        gate = self.linear(h, get(f"{pre}.mlp.gate_proj.weight"), f"layers.{i}.mlp.gate_proj", self.p.layer(i))
        up = self.linear(h, get(f"{pre}.mlp.up_proj.weight"), f"layers.{i}.mlp.up_proj", self.p.layer(i))
        act = g.op(
            "Mul",
            [g.op("Mul", [gate, g.op("Sigmoid", [gate], name=f"layers.{i}/Sigmoid")], name=f"layers.{i}/SiLU"), up],
            name=f"layers.{i}/GLU",
        )
        down = self.linear(act, get(f"{pre}.mlp.down_proj.weight"), f"layers.{i}.mlp.down_proj", self.p.layer(i))
        return g.op("Add", [x, down], name=f"layers.{i}/Residual2")


def build_decoder(
    shape: TextSettings,
    get: Callable[[str], np.ndarray],
    inv_freq: np.ndarray,
    precision: DecoderPrecision,
    out_dir: Path,
    *,
    file_name: str = "decoder.onnx",
    progress: Callable[[int], None] | None = None,
    hidden_states: bool = False,
) -> dict[str, Any]:
    """Write ``out_dir/decoder.onnx`` (+ ``.data``) from checkpoint weights.

    Args:
        shape: the language model's shapes.
        get: canonical weight name (``lm.layers.0.self_attn.q_proj.weight``, ``lm.norm.weight``,
            ``lm_head.weight``, ...) -> float32 array; called once per weight.
        inv_freq: ``(head_dim / 2,)`` RoPE inverse frequencies (taken from transformers' rotary module).
        precision: linear-layer precisions.
        out_dir: where the graph goes.
        progress: called with 1 after each layer.
        hidden_states: also return the final RMSNorm's output at every input position (``hidden_states``
            ``[1, seq, hidden]``, the LM head's input: LENS's mask pass reads it).

    Returns:
        ``{"file", "data_file", "weight_bytes": {group: bytes}}``.
    """
    from onnx import TensorProto, helper

    if any(i >= shape.num_layers for i in precision.int8_layers):
        raise ConfigError(
            f"int8_layers {sorted(precision.int8_layers)} name a layer the model does not have "
            f"(it has {shape.num_layers}: 0..{shape.num_layers - 1})"
        )
    out_dir = Path(out_dir)
    data = ExternalData(out_dir / (file_name + ".data"))
    g = GraphWriter(data)
    d = _Decoder(g, shape, precision)
    try:
        cos, sin = d.rotary(POSITION_IDS, inv_freq)
        allowed = d.allowed_mask(INPUTS_EMBEDS, ATTENTION_MASK)
        x = INPUTS_EMBEDS
        for i in range(shape.num_layers):
            x = d.layer(i, x, get, cos, sin, allowed)
            if progress:
                progress(1)
        x = d.rms_norm(x, get("lm.norm.weight"), "norm")
        if hidden_states:
            g.op("Identity", [x], outputs=[HIDDEN_STATES], name="HiddenStates")
        last = g.op(
            "Slice",
            [
                x,
                g.const(np.array([-1], np.int64)),
                g.const(np.array([2**62], np.int64)),
                g.const(np.array([1], np.int64)),
            ],
            name="LastPosition",
        )
        last = g.op("Reshape", [last, g.const(np.array([1, shape.hidden_size], np.int64))], name="LastHidden")
        head = get("lm.embed_tokens.weight") if shape.tie_word_embeddings else get("lm_head.weight")
        d.linear(last, head, "lm_head", precision.lm_head, group="lm_head")
        g.nodes[-1].output[0] = LOGITS
        del head
    finally:
        data.close()
    dtypes = {"float32": TensorProto.FLOAT, "int64": TensorProto.INT64}
    ins, outs = decoder_io(shape, hidden_states=hidden_states)
    model = g.model(
        [helper.make_tensor_value_info(t.name, dtypes[t.dtype], list(t.shape)) for t in ins],
        [helper.make_tensor_value_info(t.name, dtypes[t.dtype], list(t.shape)) for t in outs],
        graph_name="qwen25vl_decoder",
        domains={"com.microsoft": 1},
    )
    path = out_dir / file_name
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    return {
        "file": file_name,
        "data_file": data.path.name,
        "weight_bytes": dict(g.weight_bytes),
    }
