"""``segzero-edge export tiny-reasoner``: write a random-weight Qwen2.5-VL checkpoint (HF format)."""

from __future__ import annotations

import argparse

_EPILOG = """\
sizes:
  tiny  2 text layers of width 64, a 2-block vision tower, a ~900-token offline tokenizer,
        input 112x112 (16 image tokens); builds in well under a second, for tests and demos
  3b    the real Qwen2.5-VL-3B shapes (vocab 151936, tied embeddings), input 840x840
  7b    the real Qwen2.5-VL-7B shapes (vocab 152064), input 840x840
  For 3b/7b pass --num-layers/--vision-depth to keep the checkpoint small, e.g.
  `--size 3b --num-layers 2 --vision-depth 4` (full 3b: 36 layers and 32 blocks, ~15 GB in float32).

The directory loads like a real checkpoint with transformers (Qwen2_5_VLForConditionalGeneration,
AutoTokenizer) and with segzero_edge.reference.qwen.load_qwen_model / load_qwen_processor.
The weights are random: the model writes gibberish, deterministically for a given --seed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="checkpoint directory to write (must be new or empty unless --overwrite)",
    )
    parser.add_argument(
        "--size", default="tiny", choices=("tiny", "3b", "7b"), help="model shapes (default: %(default)s)"
    )
    parser.add_argument(
        "--num-layers",
        type=int,
        default=None,
        metavar="N",
        help="text decoder layers (default: the size's: tiny 2, 3b 36, 7b 28)",
    )
    parser.add_argument(
        "--vision-depth",
        type=int,
        default=None,
        metavar="N",
        help="vision transformer blocks (default: the size's: tiny 2, 3b/7b 32)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=None,
        metavar="N",
        help="square model input size in pixels, a multiple of 28 (default: tiny 112, 3b/7b 840 as in Seg-Zero)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights (default: %(default)s)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "bfloat16", "float16"),
        help="weight dtype (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace DIR if it is not empty")
    parser.add_argument(
        "--tokenizer-corpus",
        default=None,
        metavar="FILE",
        help="JSON list of texts to train the offline BPE tokenizer on (default: built-in corpus)",
    )
    parser.add_argument(
        "--bpe-vocab-size",
        type=int,
        default=None,
        metavar="N",
        help="BPE vocabulary bound of the tokenizer (default: 1000)",
    )


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from segzero_edge.errors import InputError

    from .qwen import build_tiny_qwen25vl

    corpus = None
    if args.tokenizer_corpus is not None:
        try:
            corpus = json.loads(Path(args.tokenizer_corpus).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"--tokenizer-corpus {args.tokenizer_corpus}: {exc}", hint="give a JSON file holding a list of strings"
            ) from exc

    path = build_tiny_qwen25vl(
        args.out,
        args.size,
        num_layers=args.num_layers,
        vision_depth=args.vision_depth,
        input_size=args.input_size,
        seed=args.seed,
        dtype=args.dtype,
        overwrite=args.overwrite,
        tokenizer_corpus=corpus,
        bpe_vocab_size=args.bpe_vocab_size,
    )
    size_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    print(f"wrote {path} (random Qwen2.5-VL, size {args.size}, {size_mb:.1f} MB)")
    return 0
