"""The ``segzero-edge`` command line.

Subcommands are loaded only when invoked, from the ``segzero_edge.commands`` entry points that the
installed packages declare (pyproject.toml). The runtime therefore never imports the exporter or the
trainer; a subcommand whose extra is missing says which extra to install.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from importlib.metadata import entry_points

from .._version import __version__
from ..errors import SegZeroError
from .base import Command

__all__ = ["COMMANDS", "Command", "main"]

#: Every subcommand: name -> (one-line summary, the extra that provides its dependencies).
COMMANDS: dict[str, tuple[str, str]] = {
    "predict": ("segment an image from an instruction with an engine directory", "ort"),
    "track": ("reason once, then track the object through a video, frame folder or camera", "video"),
    "serve": ("track an instruction live on a ROS 2 image topic, publishing masks every frame", "ros"),
    "inspect": ("show an engine directory's manifest, check its files and this device", "ort"),
    "export": ("turn checkpoints into an engine directory (ONNX + manifest)", "export"),
    "build": ("build TensorRT engines for this GPU from an engine directory", "tensorrt"),
    "bench": ("measure per-stage latency of an engine directory", "ort"),
    "eval": ("gIoU / cIoU of an engine directory on a ReasonSeg / RefCOCO dataset", "ort"),
    "train": ("GRPO training with the Seg-Zero recipe", "train"),
    "demo": ("build tiny random models, export them and segment the bundled image", "export"),
}

GROUP = "segzero_edge.commands"


def _load(name: str) -> Command | None:
    """The Command registered for ``name``, or None when no installed package provides it."""
    eps = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if not eps:
        return None
    command = eps[0].load()
    if not isinstance(command, Command):
        raise TypeError(f"entry point {eps[0].value} is not a segzero_edge.cli.Command")
    return command


def _top_parser() -> argparse.ArgumentParser:
    available = {ep.name for ep in entry_points(group=GROUP)}
    lines = []
    for name, (summary, extra) in COMMANDS.items():
        note = "" if name in available else "  (not available in this version)"
        lines.append(f"  {name:<9} {summary}  [extra: {extra}]{note}")
    parser = argparse.ArgumentParser(
        prog="segzero-edge",
        description="Seg-Zero reasoning segmentation on the edge: export, build, predict, benchmark, train.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun `segzero-edge COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segzero-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of an error instead of its one-line message"
    )
    parser.add_argument("command", nargs="?", help="the command to run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``segzero-edge``; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    # Global options come before the command; everything after it belongs to the command.
    split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    head, rest = argv[:split], argv[split:]
    args = top.parse_args(head + rest[:1])
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command is None:
        top.print_help()
        return 2
    name = args.command
    if name not in COMMANDS:
        top.error(f"unknown command {name!r} (choose from {', '.join(COMMANDS)})")
    extra = COMMANDS[name][1]
    try:
        command = _load(name)
    except ImportError as exc:
        print(
            f"segzero-edge {name}: missing dependency ({exc}).\n  -> pip install 'segzero-edge[{extra}]'",
            file=sys.stderr,
        )
        return 3
    if command is None:
        print(f"segzero-edge {name}: not available in segzero-edge {__version__} yet.", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(
        prog=f"segzero-edge {name}",
        description=command.description or COMMANDS[name][0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    try:
        command.add_arguments(parser)
        parse = parser.parse_intermixed_args if command.intermixed else parser.parse_args
        cmd_args = parse(rest[1:])
        with _terminate_as_interrupt():
            return int(command.run(cmd_args) or 0)
    except SegZeroError as exc:
        return _fail(name, str(exc), 1, args.debug)
    except ImportError as exc:
        return _fail(name, f"missing dependency ({exc}).\n  -> pip install 'segzero-edge[{extra}]'", 3, args.debug)
    except BrokenPipeError:
        # The reader went away (`... | head -1`): the output it wanted was written; exit quietly. stdout is
        # pointed at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(name, f"cannot access{where}: {exc.strerror or exc}", 1, args.debug)
    except KeyboardInterrupt:
        print(f"segzero-edge {name}: interrupted", file=sys.stderr)
        return 130


def _fail(name: str, message: str, code: int, debug: bool) -> int:
    """Print a user error in one line (the hint on a second), or the traceback with ``--debug``."""
    if debug:
        traceback.print_exc()
    print(f"segzero-edge {name}: error: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _terminate_as_interrupt():
    """Turn SIGTERM (``kill``, ``timeout``, systemd stop) into ``KeyboardInterrupt`` while a command runs, so
    its cleanup runs as for Ctrl-C: staging folders removed, outputs left as they were."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
