"""Command-line flags derived from the option dataclasses, so each option is defined once.

Names, defaults, types and help come from the fields of ``GenerationOptions`` and ``SegmenterOptions``
(``field(metadata={"help": ...})``): ``max_new_tokens`` becomes ``--max-new-tokens`` with the field's
default. A bool whose default is True becomes ``--no-NAME`` (``constrained`` reads ``--no-constraint``,
``do_sample`` reads ``--sample``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import MISSING, Field, fields
from typing import Any

from ..options import SegmenterOptions
from ..reasoner import GenerationOptions

#: Flags that read better than the field name.
FLAGS = {"constrained": "--no-constraint", "do_sample": "--sample"}
_TYPES = {"int": int, "float": float, "str": str}


def _fields() -> dict[str, Field]:
    out = {f.name: f for f in fields(GenerationOptions)}
    out.update({f.name: f for f in fields(SegmenterOptions) if f.name != "generation"})
    return out


def _default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def add_option_arguments(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    """Add one flag per option in ``names`` (``SegmenterOptions.names()``) to ``parser``."""
    table = _fields()
    for name in names:
        f = table[name]
        default = _default(f)
        help_text = f.metadata.get("help", name.replace("_", " "))
        if isinstance(default, bool):
            flag = FLAGS.get(name, f"--no-{name.replace('_', '-')}" if default else f"--{name.replace('_', '-')}")
            action = "store_false" if default else "store_true"
            text = f"do not {help_text} (on by default)" if default else f"{help_text} (off by default)"
            parser.add_argument(flag, dest=name, action=action, default=default, help=text)
            continue
        kind = _TYPES[str(f.type).split("|")[0].strip()]
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=kind,
            default=default,
            choices=f.metadata.get("choices"),
            help=help_text if "default" in help_text else f"{help_text} (default: %(default)s)",
        )


def option_values(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    """The parsed values of the options in ``names``, as ``Segmenter`` keyword arguments."""
    return {name: getattr(args, name) for name in names}


def add_lens_argument(parser: argparse.ArgumentParser) -> None:
    """``--lens-context``: the context graph variant of a LENS engine (``Segmenter(lens_context=...)``)."""
    parser.add_argument(
        "--lens-context",
        choices=("fp32", "int8", "int4"),
        default=None,
        help="LENS engines: the context graph variant that turns the reasoner's hidden states into SAM2's "
        "prompt (default: the engine's, see `segzero-edge inspect`)",
    )
