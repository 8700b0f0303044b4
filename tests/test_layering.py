"""Import rules of DESIGN.md §2, checked on the source tree (static) and in a fresh interpreter (dynamic).

* The runtime ``segzero_edge`` never imports torch (or other heavy ML frameworks) at module level,
  and never imports the exporter or the trainer, not even lazily.
* ``export`` and ``training`` never import each other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# source folder -> installed package name
PACKAGES = {"segzero_edge": "segzero_edge", "export": "segzero_edge.export", "training": "segzero_edge.training"}
HEAVY = {
    "torch",
    "transformers",
    "trl",
    "accelerate",
    "datasets",
    "sam2",
    "onnx",
    "onnxscript",
    "optimum",
    "vllm",
    "deepspeed",
    "torchvision",
}


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [] if rel.parts == ("__init__",) else list(rel.parts)
            if parts and parts[-1] == "__init__":
                parts = parts[:-1]
                is_pkg = True
            else:
                is_pkg = path.name == "__init__.py"
            name = ".".join([package, *parts])
            yield folder, name, is_pkg, path


def _imports(name: str, is_pkg: bool, tree: ast.AST):
    """(absolute module, lineno, at_module_level) for every import in the tree."""
    package = name if is_pkg else name.rpartition(".")[0]
    function_nodes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, function_nodes)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, not in_function
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join([*base, child.module] if child.module else base)
                else:
                    mod = child.module or ""
                yield mod, child.lineno, not in_function
                for alias in child.names:  # `from . import training` imports a submodule
                    yield f"{mod}.{alias.name}", child.lineno, not in_function
            yield from visit(child, inner)

    yield from visit(tree, False)


def _under(mod: str, package: str) -> bool:
    return mod == package or mod.startswith(package + ".")


def _problems(modules) -> list[str]:
    """Rule violations in ``modules``: (folder, module name, is_package, label, source text)."""
    problems: dict[tuple[str, int], str] = {}  # one report per import statement
    for folder, name, is_pkg, label, source in modules:
        for mod, line, top_level in _imports(name, is_pkg, ast.parse(source)):
            where = f"{label}:{line} imports {mod}"
            first = mod.split(".")[0]
            if folder == "segzero_edge":
                if (
                    _under(mod, "segzero_edge.export")
                    or _under(mod, "segzero_edge.training")
                    or first in ("export", "training")
                ):
                    problems.setdefault((label, line), f"{where}: the runtime must not import export/ or training/")
                elif top_level and first in HEAVY:
                    problems.setdefault((label, line), f"{where} at module level: import it lazily in the function")
            elif (folder == "export" and (_under(mod, "segzero_edge.training") or first == "training")) or (
                folder == "training" and (_under(mod, "segzero_edge.export") or first == "export")
            ):
                problems.setdefault((label, line), f"{where}: export/ and training/ must not import each other")
    return list(problems.values())


def test_static_import_rules():
    modules = [(f, n, pkg, str(p.relative_to(ROOT)), p.read_text()) for f, n, pkg, p in _modules()]
    assert len(modules) > 10, "the walk found too few modules: is the layout right?"
    problems = _problems(modules)
    assert not problems, "\n".join(problems)


def test_runtime_modules_import_without_torch():
    """Import every runtime module in a fresh interpreter; no heavy framework may come along."""
    runtime = [n for f, n, _, p in _modules() if f == "segzero_edge" and p.name != "__main__.py"]
    code = (
        "import importlib, sys\n"
        f"for m in {runtime!r}:\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(HEAVY)!r}"
        " or m.startswith(('segzero_edge.export', 'segzero_edge.training')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing the runtime loaded: {out.stdout.strip()}"


@pytest.mark.parametrize(
    ("folder", "name", "source", "expected"),
    [
        ("segzero_edge", "segzero_edge.sam2.ort", "import torch", "at module level"),
        ("segzero_edge", "segzero_edge.cli.x", "def f():\n    from segzero_edge.export import x", "export/"),
        ("segzero_edge", "segzero_edge.x", "def f():\n    from ..training import grpo", "must not import export/"),
        ("export", "segzero_edge.export.sam2", "from ..training import rewards", "must not import each other"),
        ("training", "segzero_edge.training.grpo", "import segzero_edge.export.cli", "each other"),
    ],
)
def test_checker_catches_violations(folder, name, source, expected):
    """The static check itself must be able to fail."""
    problems = _problems([(folder, name, False, "fake.py", source)])
    assert len(problems) == 1 and expected in problems[0]


def test_lazy_torch_import_in_runtime_is_allowed():
    lazy = "def f():\n    import torch"
    assert _problems([("segzero_edge", "segzero_edge.backends.torch_ref", False, "f.py", lazy)]) == []
