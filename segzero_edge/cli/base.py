"""The small protocol every ``segzero-edge`` subcommand implements."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: how to declare its options and how to run it.

    Attributes:
        name: the subcommand name (``segzero-edge NAME``).
        add_arguments: adds the options to an ``argparse`` parser (with help for each).
        run: runs the command with the parsed options; returns the exit code.
        description: shown by ``--help``; the first line is also the summary.
    """

    name: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
