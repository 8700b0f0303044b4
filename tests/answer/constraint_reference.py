"""An independent, slow reference of the answer constraint's language, written from the issue's
description (not from the C++ automaton): a recursive matcher over the skeleton's parts.

``allowed(think_or_answer_text, token)`` answers "may this token come next?" by brute force.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")
THINK_CLOSE, ANSWER_OPEN = "</think>", "<answer>"


def skeleton_parts(
    model_w: int, model_h: int, grammar: str = "seg_zero", max_objects: int = 1, allow_empty: bool = False
) -> list[tuple]:
    x, y = ("num", model_w), ("num", model_h)
    sep = ("sep",)
    if grammar == "vision_reasoner":
        # [O(, O){0..max_objects-1}]</answer>, O = {"bbox_2d": [x, y, x, y], "point_2d": [x, y]}: after each
        # object, either the end or (below the maximum) a separator and the next object.
        box, point = [x, sep, y, sep, x, sep, y], [x, sep, y]
        obj = [("lit", '{"bbox_2d": ['), *box, ("lit", '], "point_2d": ['), *point, ("lit", "]}")]
        tail: list[tuple] = [("lit", "]</answer>")]
        for _ in range(max_objects - 1):
            tail = [("alt", ([("lit", "]</answer>")], [sep, *obj, *tail]))]
        if allow_empty:
            return [("lit", "["), ("alt", ([("lit", "]</answer>")], [*obj, *tail]))]
        return [("lit", "["), *obj, *tail]
    return [
        ("lit", '{"bbox": ['),
        x, sep, y, sep, x, sep, y,
        ("lit", '], "points_1": ['),
        x, sep, y,
        ("lit", '], "points_2": ['),
        x, sep, y,
        ("lit", "]}</answer>"),
    ]  # fmt: skip


def entry_parts(
    entry: str,
    model_w: int,
    model_h: int,
    max_ws: int = 2,
    grammar: str = "seg_zero",
    max_objects: int = 1,
    allow_empty: bool = False,
) -> list[tuple]:
    """The language after: a generated "</think>", a generated "<answer>", or the thinking budget."""
    body = skeleton_parts(model_w, model_h, grammar, max_objects, allow_empty)
    if entry == "after_think":
        return [("ws", max_ws), ("lit", ANSWER_OPEN), *body]
    if entry == "after_answer_tag":
        return body
    if entry == "budget":
        return [("lit", THINK_CLOSE + ANSWER_OPEN), *body]
    raise ValueError(entry)


def is_prefix(text: str, parts: list[tuple], i: int = 0, k: int = 0) -> bool:
    """True when ``text[i:]`` is a prefix of some string of the language ``parts[k:]``."""
    while True:
        if i == len(text):
            return True
        if k == len(parts):
            return False
        part = parts[k]
        if part[0] == "alt":
            return any(is_prefix(text, [*option, *parts[k + 1 :]], i) for option in part[1])
        if part[0] == "lit":
            lit = part[1]
            n = min(len(lit), len(text) - i)
            if text[i : i + n] != lit[:n]:
                return False
            if n < len(lit):
                return True
            i += len(lit)
        elif part[0] == "num":
            m = _DIGITS.match(text, i)
            if not m:
                return False
            digits = m.group()
            if (len(digits) > 1 and digits[0] == "0") or int(digits) > part[1]:
                return False
            i = m.end()
        elif part[0] == "sep":
            if text[i] != ",":
                return False
            i += 1
            if i < len(text) and text[i] == " ":
                i += 1
        elif part[0] == "ws":
            j = i
            while j < len(text) and j - i < part[1] and text[j] in " \n":
                j += 1
            i = j
        k += 1


def is_complete(text: str, parts: list[tuple]) -> bool:
    """True when ``text`` is a whole string of the language (ends with "</answer>")."""
    return (
        is_prefix(text, parts)
        and text.endswith("</answer>")
        and all(not is_prefix(text + c, parts) for c in ' ,]0123456789"<')
    )


def first_tag(text: str) -> tuple[str, int] | None:
    """The tag ("</think>" or "<answer>") that ends first in ``text``, and where it ends."""
    ends = []
    for tag, entry in ((THINK_CLOSE, "after_think"), (ANSWER_OPEN, "after_answer_tag")):
        at = text.find(tag)
        if at >= 0:
            ends.append((at + len(tag), entry))
    return min(ends)[::-1] if ends else None


class Reference:
    """Tracks one generation as text and answers which tokens may follow (by brute force)."""

    def __init__(
        self,
        model_w: int,
        model_h: int,
        budget: int | None,
        grammar: str = "seg_zero",
        max_objects: int = 1,
        allow_empty: bool = False,
    ) -> None:
        self.mw, self.mh = model_w, model_h
        self.grammar, self.max_objects, self.allow_empty = grammar, max_objects, allow_empty
        self.budget = budget
        self.think = ""  # text generated in the think phase
        self.think_tokens = 0
        self.entry: str | None = None
        self.answer = ""  # text after the entry point
        if budget == 0:
            self.entry = "budget"

    def _parts(self, entry: str) -> list[tuple]:
        return entry_parts(
            entry, self.mw, self.mh, grammar=self.grammar, max_objects=self.max_objects, allow_empty=self.allow_empty
        )

    @property
    def done(self) -> bool:
        return self.entry is not None and is_complete(self.answer, self._parts(self.entry))

    def allowed(self, token: str) -> bool:
        if self.entry is None:
            tag = first_tag(self.think + token)
            if tag is None:
                return True
            entry, end = tag
            return is_prefix((self.think + token)[end:], self._parts(entry))
        if token == "" or self.done:
            return False
        return is_prefix(self.answer + token, self._parts(self.entry))

    def advance(self, token: str) -> None:
        if self.entry is None:
            tag = first_tag(self.think + token)
            if tag is not None:
                self.entry, end = tag
                self.answer = (self.think + token)[end:]
                self.think = (self.think + token)[:end]
                return
            self.think += token
            self.think_tokens += 1
            if self.budget is not None and self.think_tokens >= self.budget:
                self.entry = "budget"
            return
        self.answer += token

    def next_chars(self) -> set[str]:
        """Possible next characters in the answer phase (ASCII is enough: the grammar is ASCII)."""
        parts = self._parts(self.entry)
        return {chr(c) for c in range(128) if is_prefix(self.answer + chr(c), parts)}
