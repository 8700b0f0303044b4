"""Shared SAM2 fixtures: one random-weight hiera-t checkpoint and one exported engine directory per
test session (an export with validation takes about a minute on 2 CPU cores)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sam2_testutil import CONFIG, make_reasoner_dir, need_export_stack

from segzero_edge.manifest import load_manifest


@pytest.fixture(scope="session")
def sam2_checkpoint(tmp_path_factory) -> Path:
    need_export_stack()
    from segzero_edge.reference.builders.sam2 import build_sam2_checkpoint

    return build_sam2_checkpoint(tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_t_random.pt", CONFIG, seed=0)


@pytest.fixture(scope="session")
def engine_dir(tmp_path_factory, sam2_checkpoint) -> Path:
    """An engine directory with a stand-in reasoner component, then `segzero-edge export sam2` into it
    (through the subcommand's own argument parser and run function)."""
    import argparse

    from segzero_edge.export.sam2_export import cli

    out = make_reasoner_dir(tmp_path_factory.mktemp("engines") / "engine")
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    argv = [
        "--checkpoint",
        str(sam2_checkpoint),
        "--config",
        CONFIG,
        "--out",
        str(out),
        "--validation-images",
        "1",
        "--no-tracker",
    ]
    assert cli.run(parser.parse_args(argv)) == 0
    return out


@pytest.fixture(scope="session")
def manifest(engine_dir):
    return load_manifest(engine_dir)


@pytest.fixture(scope="session")
def official_model(sam2_checkpoint):
    from segzero_edge.reference.sam2_model import load_sam2_model

    return load_sam2_model(sam2_checkpoint, CONFIG)


@pytest.fixture(scope="session")
def runtime(engine_dir):
    from segzero_edge.sam2 import Sam2Pipeline

    return Sam2Pipeline(engine_dir, device="cpu", backend="ort", threads=2)
