"""Pure-Python twin of ``csrc/core/json_lite.*`` and ``csrc/core/pynum.*`` (the answer JSON reader).

Behaviour is identical to the C++ code, error reasons included; ``tests/answer`` checks that on
100k+ generated strings. The grammar and every decision are documented in ``csrc/core/json_lite.hpp``
(a superset of Python's ``json``: single quotes, True/False/None, one trailing comma) and
``csrc/core/pynum.hpp`` (numeric strings read like Python's ``int()``, plus decimals).

Values: JSON numbers are ``float``; true/false are ``bool``; null is ``None``; strings ``str``;
arrays ``list``; objects ``JObject`` (members in order, duplicates kept).
"""

from __future__ import annotations

import re
from bisect import bisect_right

UNEXPECTED_END = "unexpected end"
UNEXPECTED_CHAR = "unexpected character"
BAD_STRING = "bad string"

_WS = re.compile(r"[ \t\n\r]*")
_PLAIN = {'"': re.compile(r'[^"\\\x00-\x1f]*'), "'": re.compile(r"[^'\\\x00-\x1f]*")}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_INT_PART = re.compile(r"0|[1-9][0-9]*")
_DIGITS = re.compile(r"[0-9]*")
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "'": "'",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
# Literals by first character, in the order the C++ code tries them: (word, value).
_NAN = float("nan")
_INF = float("inf")
_LITERALS = {
    "t": (("true", True),),
    "T": (("True", True),),
    "f": (("false", False),),
    "F": (("False", False),),
    "n": (("null", None),),
    "N": (("NaN", _NAN), ("None", None)),
    "I": (("Infinity", _INF),),
}


class JObject:
    """A JSON object: ``members`` is the list of ``(key, value)`` pairs in order (duplicates kept)."""

    __slots__ = ("members",)

    def __init__(self) -> None:
        self.members: list[tuple[str, object]] = []


class JsonError(Exception):
    """Parse failure; ``args[0]`` is one of the three reasons shared with the C++ reader."""


def _match_word(s: str, p: int, end: int, word: str) -> str | None:
    """None when ``word`` is at ``s[p:]``; else UNEXPECTED_END (input stops inside it) or UNEXPECTED_CHAR."""
    rest = s[p:end]
    if len(rest) >= len(word):
        return None if rest.startswith(word) else UNEXPECTED_CHAR
    return UNEXPECTED_END if word.startswith(rest) else UNEXPECTED_CHAR


def _hex4(s: str, p: int, end: int) -> int:
    if end - p < 4 or not _HEX4.match(s, p, p + 4):
        return -1
    return int(s[p : p + 4], 16)


def _parse_string(s: str, p: int, end: int) -> tuple[str, int]:
    quote = s[p]
    plain = _PLAIN[quote]
    q = p + 1
    parts: list[str] = []
    while True:
        r = plain.match(s, q, end).end()
        if r > q:
            parts.append(s[q:r])
            q = r
        if q >= end:
            raise JsonError(UNEXPECTED_END)
        c = s[q]
        if c == quote:
            return "".join(parts), q + 1
        if c != "\\":
            raise JsonError(BAD_STRING)  # control character
        q += 1
        if q >= end:
            raise JsonError(UNEXPECTED_END)
        e = s[q]
        q += 1
        simple = _SIMPLE_ESCAPES.get(e)
        if simple is not None:
            parts.append(simple)
        elif e == "u":
            cp = _hex4(s, q, end)
            if cp < 0:
                raise JsonError(BAD_STRING)
            q += 4
            if 0xD800 <= cp <= 0xDBFF and end - q >= 6 and s[q] == "\\" and s[q + 1] == "u":
                lo = _hex4(s, q + 2, end)
                if 0xDC00 <= lo <= 0xDFFF:
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    q += 6
            parts.append(chr(cp))
        else:
            raise JsonError(BAD_STRING)


def _parse_scalar(s: str, p: int, end: int) -> tuple[object, int]:
    c = s[p]
    if c == '"' or c == "'":
        return _parse_string(s, p, end)
    if c == "-" or "0" <= c <= "9":
        q = p
        if c == "-":
            q += 1
            if q >= end:
                raise JsonError(UNEXPECTED_END)
            if s[q] == "I":
                err = _match_word(s, q, end, "Infinity")
                if err:
                    raise JsonError(err)
                return -_INF, q + 8
        m = _INT_PART.match(s, q, end)
        if not m:
            raise JsonError(UNEXPECTED_CHAR)
        q = m.end()
        if q + 1 < end and s[q] == "." and "0" <= s[q + 1] <= "9":
            q = _DIGITS.match(s, q + 2, end).end()
        if q < end and s[q] in "eE":
            r = q + 1
            if r < end and s[r] in "+-":
                r += 1
            if r < end and "0" <= s[r] <= "9":
                q = _DIGITS.match(s, r + 1, end).end()
        return float(s[p:q]), q
    best = UNEXPECTED_CHAR
    for word, value in _LITERALS.get(c, ()):
        err = _match_word(s, p, end, word)
        if err is None:
            return value, p + len(word)
        if err == UNEXPECTED_END:
            best = err
    raise JsonError(best)


def _skip_ws(s: str, p: int, end: int) -> int:
    return _WS.match(s, p, end).end()


def parse_value(s: str, begin: int, end: int) -> tuple[object, int]:
    """Parses one value at ``s[begin:end]``; returns ``(value, end_offset)`` or raises ``JsonError``."""
    stack: list[object] = []  # open containers (list or JObject)
    key = ""
    p = begin

    def read_key(p: int) -> tuple[str, int]:
        if p >= end:
            raise JsonError(UNEXPECTED_END)
        if s[p] != '"' and s[p] != "'":
            raise JsonError(UNEXPECTED_CHAR)
        k, p = _parse_string(s, p, end)
        p = _skip_ws(s, p, end)
        if p >= end:
            raise JsonError(UNEXPECTED_END)
        if s[p] != ":":
            raise JsonError(UNEXPECTED_CHAR)
        return k, p + 1

    def attach(value: object) -> None:
        if stack:
            top = stack[-1]
            if type(top) is JObject:
                top.members.append((key, value))
            else:
                top.append(value)

    root: object = None
    while True:
        p = _skip_ws(s, p, end)
        if p >= end:
            raise JsonError(UNEXPECTED_END)
        c = s[p]
        opened = False
        if c == "{" or c == "[":
            container: object = JObject() if c == "{" else []
            if not stack:
                root = container
            attach(container)
            stack.append(container)
            p = _skip_ws(s, p + 1, end)
            if p >= end:
                raise JsonError(UNEXPECTED_END)
            if s[p] == ("}" if c == "{" else "]"):
                p += 1
                stack.pop()
            else:
                opened = True
                if c == "{":
                    key, p = read_key(p)
        else:
            value, p = _parse_scalar(s, p, end)
            if not stack:
                root = value
            attach(value)
        if opened:
            continue
        need_value = False
        while stack:
            is_obj = type(stack[-1]) is JObject
            close = "}" if is_obj else "]"
            p = _skip_ws(s, p, end)
            if p >= end:
                raise JsonError(UNEXPECTED_END)
            if s[p] == ",":
                p = _skip_ws(s, p + 1, end)
                if p >= end:
                    raise JsonError(UNEXPECTED_END)
                if s[p] == close:  # one trailing comma (extension)
                    p += 1
                    stack.pop()
                    continue
                if is_obj:
                    key, p = read_key(p)
                need_value = True
                break
            if s[p] == close:
                p += 1
                stack.pop()
                continue
            raise JsonError(UNEXPECTED_CHAR)
        if need_value:
            continue
        return root, p


# ---- numeric strings (csrc/core/pynum.*) ----

# Zero code points of the Unicode decimal digit runs (Unicode 14.0, Python 3.11); same table as C++.
_DIGIT_ZEROS = (
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0,
    0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0,
    0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50, 0x1D7CE,
    0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
)  # fmt: skip
_SPACES_FROM_127 = frozenset([0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
_ASCII_SPACES = " \t\n\x0b\x0c\r"
_INT_GRAMMAR = re.compile(r"[+-]?([0-9]+(?:_[0-9]+)*)\Z")
_DECIMAL_GRAMMAR = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_NON_FINITE_WORDS = ("nan", "inf", "infinity")

NUMBER_OK, NOT_A_NUMBER, NON_FINITE = 0, 1, 2


def unicode_decimal(cp: int) -> int:
    """Decimal value of a Unicode digit code point, or -1 (fixed Unicode 14.0 table)."""
    i = bisect_right(_DIGIT_ZEROS, cp) - 1
    if i >= 0 and cp - _DIGIT_ZEROS[i] < 10:
        return cp - _DIGIT_ZEROS[i]
    return -1


def parse_numeric_string(text: str) -> tuple[int, float]:
    """``(status, value)`` for a string coordinate; see ``csrc/core/pynum.hpp``."""
    if not text.isascii():
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp < 127:
                chars.append(ch)
            elif cp in _SPACES_FROM_127:
                chars.append(" ")
            else:
                d = unicode_decimal(cp)
                if d < 0:
                    return NOT_A_NUMBER, 0.0
                chars.append(chr(48 + d))
        text = "".join(chars)
    s = text.strip(_ASCII_SPACES)
    if not s:
        return NOT_A_NUMBER, 0.0
    m = _INT_GRAMMAR.match(s)
    if m:
        value = float(m.group(1).replace("_", ""))
        return NUMBER_OK, (-value if s[0] == "-" else value)
    if _DECIMAL_GRAMMAR.match(s):
        return NUMBER_OK, float(s)
    word = s[1:] if s[0] in "+-" else s
    if word.lower() in _NON_FINITE_WORDS:
        return NON_FINITE, 0.0
    return NOT_A_NUMBER, 0.0
