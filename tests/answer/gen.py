"""Seeded generators of model answers: realistic ones in every spelling models produce, VisionReasoner
lists, and mutated / random strings. Fast plain-``random`` code, so 100k+ strings take seconds."""

from __future__ import annotations

import json
import random

WORDS = [
    "the",
    "cup",
    "on",
    "table",
    "red",
    "robot",
    "pick",
    "up",
    "one",
    "closest",
    "to",
    "gripper",
    "handle",
    "object",
    "left",
    "right",
    "top",
    "bottom",
    "image",
    "near",
    "large",
    "small",
    "white",
    "dog",
    "person",
    "chair",
    "box",
    "point",
    "circle",
    "region",
    "target",
]

# Coordinate spellings: (text, kind). kinds: "int", "float", "str", "other".
_NUMERIC_STRINGS = (" {v} ", "{v}", "+{v}", "{v}.0", "{v}_0", "\u0661{v}", "{v}\u00a0", "\t{v}\n")


def number(rng: random.Random, lo: int = 0, hi: int = 840, *, exotic: float = 0.15) -> str:
    """One coordinate as JSON text: mostly a plain int, sometimes a float, string, bool, NaN..."""
    v = rng.randrange(lo, hi + 1)
    if rng.random() >= exotic:
        return str(v)
    r = rng.random()
    if r < 0.30:
        return rng.choice([f"{v}.{rng.randrange(10)}", f"{v}.5", f"{v}e0", f"{v}.49999", f"{v / 7:.6g}"])
    if r < 0.55:
        return json.dumps(rng.choice(_NUMERIC_STRINGS).format(v=v), ensure_ascii=rng.random() < 0.5)
    if r < 0.65:
        return rng.choice(["true", "false"])
    if r < 0.75:
        return rng.choice(["-" + str(v), str(v * 10), str(-v * 10), "1e3", "123456789012345678901234"])
    if r < 0.85:
        return rng.choice(["NaN", "Infinity", "-Infinity", "null", "[1]", '"abc"', '""', "1e400"])
    return f"{rng.randrange(10)}.{rng.randrange(10**9)}e{rng.randrange(-5, 4)}"


def _arr(rng: random.Random, n: int, *, exotic: float) -> str:
    sep = rng.choice([", ", ",", " , ", ",\n"])
    return "[" + sep.join(number(rng, exotic=exotic) for _ in range(n)) + "]"


def _key(rng: random.Random, name: str, q: str) -> str:
    variants = {
        "bbox": ["bbox", "bbox", "bbox", "Bbox", "BBOX", " bbox", "bbox ", "bbox_2d", "the_bbox", "box"],
        "points_1": ["points_1", "points_1", "Points_1", "points 1", "POINTS_1", "points1", "point_1"],
        "points_2": ["points_2", "points_2", "Points_2", "points 2", "points2", "point_2", "points_2 "],
    }[name]
    key = rng.choice(variants) if rng.random() < 0.3 else name
    if q == '"' and rng.random() < 0.03:
        key = "".join(f"\\u{ord(c):04x}" if rng.random() < 0.3 else c for c in key)
    return f"{q}{key}{q}"


def seg_zero_json(rng: random.Random, *, exotic: float = 0.15) -> str:
    q = "'" if rng.random() < 0.1 else '"'
    kv = rng.choice([": ", ":", " : "])
    n_box = 4 if rng.random() < 0.93 else rng.choice([3, 5, 0])
    n_pt = [2 if rng.random() < 0.95 else rng.choice([1, 3]) for _ in range(2)]
    members = [
        f"{_key(rng, 'bbox', q)}{kv}{_arr(rng, n_box, exotic=exotic)}",
        f"{_key(rng, 'points_1', q)}{kv}{_arr(rng, n_pt[0], exotic=exotic)}",
        f"{_key(rng, 'points_2', q)}{kv}{_arr(rng, n_pt[1], exotic=exotic)}",
    ]
    if rng.random() < 0.05:
        members.append(f"{q}bbox{q}{kv}{_arr(rng, 4, exotic=exotic)}")  # duplicate key
    if rng.random() < 0.05:
        members.insert(rng.randrange(4), f"{q}label{q}{kv}{q}cup{q}")
    if rng.random() < 0.1:
        rng.shuffle(members)
    sep = rng.choice([", ", ",", ",\n  "])
    ws = rng.choice(["", "", " ", "\n"])
    return "{" + ws + sep.join(members) + ws + "}"


def vision_reasoner_json(rng: random.Random, *, exotic: float = 0.05) -> str:
    items = []
    for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
        a, b = _arr(rng, 4, exotic=exotic), _arr(rng, 2, exotic=exotic)
        items.append(
            rng.choice(['{{"bbox_2d": {a}, "point_2d": {b}}}', '{{"point_2d": {b}, "bbox_2d": {a}}}']).format(a=a, b=b)
        )
    return "[" + rng.choice([", ", ","]).join(items) + "]"


def think_text(rng: random.Random, *, braces: bool = True) -> str:
    r = rng.random()
    if r < 0.05:
        return ""
    words = [rng.choice(WORDS) for _ in range(rng.randrange(3, 60))]
    if r < 0.15:
        words.insert(rng.randrange(len(words)), "x<y")
    if braces and r > 0.9:
        words.insert(rng.randrange(len(words)), rng.choice(["{", "}", "{maybe}", '{"bbox": [1, 2, 3, 4]}']))
    if rng.random() < 0.05:
        words.insert(rng.randrange(len(words)), rng.choice(["café", "日本語", "🙂"]))
    return " ".join(words) + "."


def realistic(rng: random.Random, *, braces_in_think: bool = True, multi: float = 0.15) -> str:
    """A whole model output."""
    body = vision_reasoner_json(rng) if rng.random() < multi else seg_zero_json(rng)
    think = think_text(rng, braces=braces_in_think)
    sep = rng.choice(["", "", "\n", " ", "\n\n"])
    r = rng.random()
    if r < 0.75:
        text = f"<think>{think}</think>{sep}<answer>{body}</answer>"
    elif r < 0.82:
        text = f"<think>{think}</think>{sep}<answer>{body}"  # truncated after the JSON
    elif r < 0.87:
        text = body
    elif r < 0.92:
        text = f"<answer>{body}</answer>"
    elif r < 0.96:
        text = f"<think>{think}</think>{sep}<answer>```json\n{body}\n```</answer>"
    else:
        text = f"<think>{think}</think>{sep}{body}"
    if rng.random() < 0.05:
        text += rng.choice(["\n", "<|im_end|>", " done."])
    return text


_ALPHABET = "{}[]\"',:. 0123456789-+eE_abxtpoins<>/\\\nNaIfy"
_SNIPPETS = (
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
    '"bbox"',
    '"points_1"',
    "'points_2'",
    "[1, 2]",
    "{",
    "}",
)


def mutate(rng: random.Random, text: str) -> str:
    """A few random edits: deletions, insertions, replacements, truncation, splices."""
    s = list(text)
    for _ in range(rng.randrange(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(s) + 1)
        if op < 0.25 and s:
            del s[min(pos, len(s) - 1) : min(pos + rng.randrange(1, 6), len(s))]
        elif op < 0.5:
            s[pos:pos] = rng.choice(_ALPHABET)
        elif op < 0.65 and s:
            s[min(pos, len(s) - 1)] = rng.choice(_ALPHABET)
        elif op < 0.8:
            s[pos:pos] = rng.choice(_SNIPPETS)
        elif op < 0.9:
            s = s[:pos]
        else:
            s[pos:pos] = chr(rng.choice([0, 0x1F, 0x7F, 0x85, 0xA0, 0x663, 0xD800, 0xDC00, 0xFFFD, 0x1F600]))
    return "".join(s)


def random_text(rng: random.Random) -> str:
    n = rng.randrange(0, 80)
    return "".join(rng.choice(_ALPHABET) if rng.random() < 0.9 else rng.choice(_SNIPPETS) for _ in range(n))


def any_text(rng: random.Random) -> str:
    """The mix used for native/Python parity: realistic, mutated and random strings."""
    r = rng.random()
    if r < 0.35:
        return realistic(rng)
    if r < 0.85:
        return mutate(rng, realistic(rng))
    return random_text(rng)


def sizes(rng: random.Random) -> tuple[int, int, int, int]:
    """(image_w, image_h, model_w, model_h)."""
    w = rng.choice([rng.randrange(1, 5000), 640, 1280, 840, 420, 1680, 333])
    h = rng.choice([rng.randrange(1, 5000), 480, 720, 840, 420, 1260, 777])
    mw, mh = rng.choice([(840, 840), (840, 840), (448, 448), (672, 560), (1000, 3)])
    return w, h, mw, mh
