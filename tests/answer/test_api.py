"""Public API: decode_answer arguments, backend selection (native, twin, missing extension), imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from segzero_edge import decode_answer
from segzero_edge.answer import decode as answer

GOOD = '<think>t</think><answer>{"bbox": [10, 100, 200, 210], "points_1": [30, 110], "points_2": [35, 180]}</answer>'


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_public_import_and_default_backend():
    import segzero_edge

    assert segzero_edge.decode_answer is decode_answer and "decode_answer" in segzero_edge.__all__
    assert answer.BACKEND in ("native", "python")
    a = decode_answer(GOOD, (1680, 420))
    assert a.ok and a.box == (20.0, 50.0, 400.0, 105.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"text": b"<answer>"}, TypeError, "decode bytes"),
        ({"text": None}, TypeError, "text must be a str"),
        ({"image_size": (640.5, 480)}, TypeError, "must be an int"),
        ({"image_size": ("640", 480)}, TypeError, "must be an int"),
        ({"image_size": (True, 480)}, TypeError, "bool"),
        ({"image_size": 640}, TypeError, "pair"),
        ({"image_size": "640x480"}, TypeError, "pair"),
        ({"image_size": (640,)}, ValueError, "2 entries"),
        ({"image_size": (0, 480)}, ValueError, "positive"),
        ({"image_size": (640, -1)}, ValueError, "positive"),
        ({"model_size": (840,)}, ValueError, "2 entries"),
        ({"model_size": 0}, ValueError, "positive"),
        ({"model_size": 840.0}, TypeError, "model_size"),
    ],
)
def test_argument_errors(kwargs, error, match):
    args = {"text": GOOD, "image_size": (640, 480), **kwargs}
    with pytest.raises(error, match=match):
        decode_answer(**args)


def test_sizes_accept_int_like_values():
    ref = decode_answer(GOOD, (1680, 420))
    assert decode_answer(GOOD, [1680, 420]) == ref
    assert decode_answer(GOOD, np.array([1680, 420])) == ref
    assert decode_answer(GOOD, (np.int64(1680), np.int32(420)), model_size=np.int16(840)) == ref
    assert decode_answer(GOOD, (1680, 420), model_size=[840, 840]) == ref
    assert decode_answer(GOOD).box == (10.0, 100.0, 200.0, 210.0)  # model pixels


def test_oversized_text_is_a_failed_answer_not_an_exception():
    a = decode_answer("x" * (answer.MAX_TEXT_CHARS + 1))
    assert not a.ok and "too long" in a.error


def test_pure_python_env_selects_the_twin():
    out = _run(
        """
        import warnings
        warnings.simplefilter("error")
        from segzero_edge import decode_answer
        from segzero_edge.answer import decode as answer
        print(answer.BACKEND, decode_answer('{"bbox": [1, 2, 3, 4]}').box)
        """,
        SEGZERO_EDGE_PURE_PYTHON="1",
    )
    assert out == "python (1.0, 2.0, 3.0, 4.0)"


def test_missing_extension_falls_back_with_one_warning():
    out = _run(
        """
        import importlib.abc, sys, warnings

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "segzero_edge._native":
                    raise ImportError("blocked by the test")

        sys.meta_path.insert(0, Block())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import segzero_edge
            from segzero_edge import decode_answer
            from segzero_edge.answer import decode as answer
            import segzero_edge.answer.constraint as ac
            for _ in range(3):
                assert decode_answer('{"bbox": [1, 2, 3, 4]}').ok
            assert answer.AnswerStream().feed("<answer>{}</answer>")
        runtime = [w for w in caught if issubclass(w.category, RuntimeWarning)]
        try:
            ac.AnswerConstraint([bytes([b]) for b in range(256)])
        except ImportError as exc:
            kind = type(exc).__name__
        print(answer.BACKEND, len(runtime), "blocked by the test" in str(runtime[0].message), kind)
        """
    )
    assert out == "python 1 True BackendUnavailableError"


def test_runtime_modules_do_not_import_torch():
    out = _run(
        """
        import sys
        import segzero_edge, segzero_edge.answer, segzero_edge.answer.constraint
        print(sorted(m for m in ("torch", "transformers") if m in sys.modules))
        """
    )
    assert out == "[]"
