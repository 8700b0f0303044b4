"""The ``segzero-edge`` CLI: lazy subcommands, help, and missing-extra messages."""

import re
import subprocess
import sys

from segzero_edge.cli import COMMANDS, main


def _run(*args, pre=""):
    code = pre + "import sys\nfrom segzero_edge.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_top_level_help_lists_every_command_without_loading_them(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    probe = _run("--help", pre="")
    assert probe.returncode == 0 and "export" in probe.stdout


def test_help_does_not_import_torch():
    code = (
        "import sys\nfrom segzero_edge.cli import main\n"
        "try:\n    main(['export', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "tiny-sam2" in out.stdout
    assert out.stdout.strip().endswith("False")


def test_unknown_command_is_an_error():
    out = _run("frobnicate")
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr


def test_missing_extra_says_which_extra_to_install(tmp_path):
    # Simulate a machine without torch: the import of torch fails as it would there.
    out = _run("export", "tiny-sam2", "--out", str(tmp_path / "x.pt"), pre="import sys\nsys.modules['torch'] = None\n")
    assert out.returncode == 3, out.stderr
    assert "pip install 'segzero-edge[export]'" in out.stderr
    assert not (tmp_path / "x.pt").exists()


def test_subcommand_help_explains_options():
    out = _run("export", "tiny-sam2", "--help")
    assert out.returncode == 0
    assert "--config" in out.stdout and "official SAM2 config name" in out.stdout


def test_inspect_shows_manifest_and_checks_files(toy_engine_dir):
    out = _run("inspect", str(toy_engine_dir))
    assert out.returncode == 0, out.stderr
    assert "graph sam2.mask_decoder" in out.stdout and "min/opt/max 1/1/16" in out.stdout
    assert "sizes and sha256 match" in out.stdout
    assert re.search(r"validation sam2\.mask_iou_min {2,}= 0\.9995\n", out.stdout)  # aligned, never run together
    assert "providers" in out.stdout


def test_inspect_refuses_tampered_engine_dir(toy_engine_dir):
    p = toy_engine_dir / "sam2" / "image_encoder.onnx"
    p.write_bytes(p.read_bytes()[:-1] + b"X")
    out = _run("inspect", str(toy_engine_dir))
    assert out.returncode == 1
    assert "sam2/image_encoder.onnx does not match its sha256" in out.stderr
