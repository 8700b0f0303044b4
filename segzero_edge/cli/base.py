"""The small protocol every ``segzero-edge`` subcommand implements."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: ``--device`` help shared by the commands (the accepted forms are ``segzero_edge.ort.DEVICES``).
DEVICE_HELP = (
    "where to run: auto (CUDA when ONNX Runtime, or torch for --backend torch, can use it, else the CPU), "
    "cpu, cuda, cuda:N (GPU N), tensorrt[:N] (ONNX Runtime's TensorRT provider) (default: %(default)s)"
)


def positive_int(text: str) -> int:
    """``argparse`` type of a count that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def progress_bar(total: int | None, desc: str, unit: str) -> Any:
    """A tqdm bar on stderr (rate shown as ``unit``/s), or None when tqdm is missing (it comes with the
    ``video`` extra); callers update it when not None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr)


@dataclass(frozen=True)
class Command:
    """A subcommand: how to declare its options and how to run it.

    Attributes:
        name: the subcommand name (``segzero-edge NAME``).
        add_arguments: adds the options to an ``argparse`` parser (with help for each).
        run: runs the command with the parsed options; returns the exit code.
        description: shown by ``--help``; the first line is also the summary.
        intermixed: parse options between positionals (``track ENGINE BAG --topic T "TEXT"``, where an
            optional positional follows the option); ``argparse.parse_intermixed_args``.
    """

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    intermixed: bool = False


def command_line(name: str, args: argparse.Namespace, positional: Sequence[str]) -> str:
    """A shell command that repeats ``segzero-edge NAME`` with the parsed ``args`` (for result files):
    ``positional`` in order, then every option that is set (flags when true, values when not None)."""
    parts = ["segzero-edge", name]
    values = vars(args)
    for key in positional:
        parts.append(str(values[key]))
    for key, value in values.items():
        if key in positional or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list | tuple):
            parts += [flag, *(str(v) for v in value)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
