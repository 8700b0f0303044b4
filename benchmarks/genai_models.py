"""Build onnxruntime-genai model directories for the Seg-Zero world reasoner (run with gvenv's python).

Variants (each a directory with genai_config.json, model/decoder graph, embedding.onnx, vision.onnx):
  builder_<prec>:  (b) decoder from `python -m onnxruntime_genai.models.builder --extra_options exclude_embeds=true`
  project_<prec>:  (a) the project's own exported decoder graph (segzero-edge export), logits reshaped to [1,1,V]
Both reuse the project's vision.onnx (pixel_values [256,1176] -> image_embeds [64,128]) and an embedding.onnx
written here from the project's embedding table (input_ids + image_features -> inputs_embeds).

usage: benchmarks/genai_models.py --checkpoint CKPT --engine ENGINE_DIR --out OUT_DIR --precision fp32|int4
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_embedding(table: np.ndarray, image_pad: int, path: Path) -> None:
    """input_ids [B,S] int64, image_features [N,H] float32 -> inputs_embeds [B,S,H]; the i-th image pad in the
    sequence gets image_features[i] (a zero row is prepended so an empty image_features works in decoding)."""
    table = np.asarray(table)
    if table.dtype != np.float16:
        table = table.astype(np.float32)
    hidden = table.shape[1]
    inits = [
        numpy_helper.from_array(table, "embed_table"),
        numpy_helper.from_array(np.array(image_pad, np.int64), "pad_id"),
        numpy_helper.from_array(np.zeros((1, hidden), np.float32), "zero_row"),
        numpy_helper.from_array(np.array(-1, np.int64), "minus_one"),
        numpy_helper.from_array(np.array([-1], np.int64), "flat"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
    ]
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["embed_table", "ids64"], ["text_emb_raw"], axis=0),
        helper.make_node("Cast", ["text_emb_raw"], ["text_emb"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["ids64", "pad_id"], ["is_pad"]),
        helper.make_node("Cast", ["is_pad"], ["is_pad64"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["is_pad64", "flat"], ["is_pad_flat"]),
        helper.make_node("CumSum", ["is_pad_flat", "zero"], ["csum"]),
        helper.make_node("Mul", ["csum", "is_pad_flat"], ["idx_flat"]),  # 1-based for pads, 0 elsewhere
        helper.make_node("Shape", ["ids64"], ["ids_shape"]),
        helper.make_node("Reshape", ["idx_flat", "ids_shape"], ["idx"]),
        helper.make_node("Concat", ["zero_row", "image_features"], ["feats"], axis=0),
        helper.make_node("Gather", ["feats", "idx"], ["img_emb"], axis=0),
        helper.make_node("Unsqueeze", ["is_pad", "minus_one"], ["is_pad3"]),
        helper.make_node("Where", ["is_pad3", "img_emb", "text_emb"], ["inputs_embeds"]),
    ]
    graph = helper.make_graph(
        nodes,
        "embedding",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
            helper.make_tensor_value_info("image_features", TensorProto.FLOAT, ["num_image_tokens", hidden]),
        ],
        [helper.make_tensor_value_info("inputs_embeds", TensorProto.FLOAT, ["batch_size", "sequence_length", hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if table.nbytes > 1 << 30:  # protobuf 2 GB limit: the table goes to external data
        onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=1 << 20)
    else:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def processor_config(input_size: int, pre: dict) -> dict:
    px = input_size * input_size
    return {
        "processor": {
            "name": "qwen2_5_image_processor",
            "transforms": [
                {"operation": {"name": "decode_image", "type": "DecodeImage", "attrs": {"color_space": "RGB"}}},
                {"operation": {"name": "convert_to_rgb", "type": "ConvertRGB"}},
                {
                    "operation": {
                        "name": "resize",
                        "type": "Resize",
                        "attrs": {
                            "width": input_size,
                            "height": input_size,
                            "smart_resize": 1,
                            "min_pixels": px,
                            "max_pixels": px,
                            "patch_size": pre["patch_size"],
                            "merge_size": pre["merge_size"],
                        },
                    }
                },
                {
                    "operation": {
                        "name": "rescale",
                        "type": "Rescale",
                        "attrs": {"rescale_factor": pre["rescale_factor"]},
                    }
                },
                {
                    "operation": {
                        "name": "normalize",
                        "type": "Normalize",
                        "attrs": {"mean": pre["image_mean"], "std": pre["image_std"], "qwen2_5_vl": 1},
                    }
                },
                {
                    "operation": {
                        "name": "patch_image",
                        "type": "PatchImage",
                        "attrs": {
                            "patch_size": pre["patch_size"],
                            "temporal_patch_size": pre["temporal_patch_size"],
                            "merge_size": pre["merge_size"],
                        },
                    }
                },
            ],
        }
    }


def genai_config(settings: dict, decoder_file: str, share_buffer: bool, context_length: int) -> dict:
    t = settings["text"]
    ids = settings["token_ids"]
    return {
        "model": {
            "bos_token_id": settings["bos_token_id"],
            "context_length": context_length,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": decoder_file,
                "head_size": t["head_dim"],
                "hidden_size": t["hidden_size"],
                "inputs": {
                    "inputs_embeds": "inputs_embeds",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": t["num_heads"],
                "num_hidden_layers": t["num_layers"],
                "num_key_value_heads": t["num_kv_heads"],
            },
            "embedding": {
                "filename": "embedding.onnx",
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "inputs": {"input_ids": "input_ids", "image_features": "image_features"},
                "outputs": {"inputs_embeds": "inputs_embeds"},
            },
            "vision": {
                "filename": "vision.onnx",
                "config_filename": "processor_config.json",
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "spatial_merge_size": settings["preprocess"]["merge_size"],
                "patch_size": settings["preprocess"]["patch_size"],
                "inputs": {"pixel_values": "pixel_values"},
                "outputs": {"image_features": "image_embeds"},
            },
            "eos_token_id": list(settings["eos_token_ids"]),
            "pad_token_id": settings["pad_token_id"],
            "image_token_id": ids["image_pad"],
            "vision_start_token_id": ids["vision_start"],
            "type": "qwen2_5_vl",
            "vocab_size": t["vocab_size"],
        },
        "search": {
            "do_sample": False,
            "early_stopping": True,
            "max_length": context_length,
            "min_length": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": share_buffer,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


def reshape_project_logits(src: Path, dst: Path) -> None:
    """The project's decoder outputs last-position logits [1, V]; genai wants [B, S, V]: add Unsqueeze -> [1,1,V]."""
    m = onnx.load(str(src), load_external_data=False)
    out = next(o for o in m.graph.output if o.name == "logits")
    vocab = out.type.tensor_type.shape.dim[-1].dim_value
    for n in m.graph.node:
        n.output[:] = ["logits_2d" if o == "logits" else o for o in n.output]
        n.input[:] = ["logits_2d" if i == "logits" else i for i in n.input]
    m.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "logits_axis1"))
    m.graph.node.append(helper.make_node("Unsqueeze", ["logits_2d", "logits_axis1"], ["logits"]))
    m.graph.output.remove(out)
    m.graph.output.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1, vocab]))
    onnx.save(m, str(dst))  # external data stays in the file the graph names (copied next to it)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--engine", type=Path, required=True, help="segzero-edge engine dir (its reasoner/ files)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int4", "int8"])
    ap.add_argument("--context-length", type=int, default=2048)
    ap.add_argument("--variants", default="builder,project")
    ap.add_argument("--builder-extra", nargs="*", default=[], help="more builder --extra_options KEY=VALUE")
    args = ap.parse_args()
    manifest = json.loads((args.engine / "manifest.json").read_text())
    settings = manifest["components"]["reasoner"]
    rdir = args.engine / "reasoner"
    table = np.load(args.engine / settings["embeddings"]["file"])  # fp16 tables stay fp16 (Cast in the graph)
    pre = settings["preprocess"]
    for variant in args.variants.split(","):
        out = args.out / f"{variant}_{args.precision}"
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        if variant == "builder":
            cmd = [
                sys.executable,
                "-m",
                "onnxruntime_genai.models.builder",
                "-i",
                str(args.checkpoint),
                "-o",
                str(out),
                "-p",
                args.precision,
                "-e",
                "cpu",
                "-c",
                str(args.out / "cache"),
                "--extra_options",
                "exclude_embeds=true",
                *args.builder_extra,
            ]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            share = True
            decoder_file = "model.onnx"
        else:
            for f in rdir.iterdir():
                if f.name.startswith("decoder.onnx."):
                    shutil.copy(f, out / f.name)
            reshape_project_logits(rdir / "decoder.onnx", out / "decoder.onnx")
            for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
                shutil.copy(rdir / f, out / f)
            share = False  # plain Concat KV cache: past and present are different buffers
            decoder_file = "decoder.onnx"
        shutil.copy(rdir / "vision.onnx", out / "vision.onnx")
        make_embedding(table, settings["token_ids"]["image_pad"], out / "embedding.onnx")
        (out / "processor_config.json").write_text(json.dumps(processor_config(settings["input_size"], pre), indent=2))
        cfg = genai_config(settings, decoder_file, share, args.context_length)
        (out / "genai_config.json").write_text(json.dumps(cfg, indent=2))
        print("built", out)


if __name__ == "__main__":
    main()
