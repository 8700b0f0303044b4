"""ROS 2 image and result messages <-> numpy, for bags and the live node alike.

A message here is any object with the ROS field names as attributes: rosbags' deserialised dataclasses,
mcap-ros2-support's decoded messages and this package's DDS types (``wire.py``) all qualify, so one
converter serves every transport.

Frames: ``sensor_msgs/msg/Image`` in ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8``, ``mono8`` (and ``8UC3``/``8UC1``,
which ``cv_bridge`` treats as ``bgr8``/``mono8``), rows padded to ``step`` bytes or not; and
``sensor_msgs/msg/CompressedImage`` in any format Pillow decodes (JPEG, PNG, ...). Depth, 16-bit, float and
Bayer images are refused: they are not colour frames SAM2 was trained on. Conversion is a reshape (and a
channel swap) in numpy and a Pillow decode; ``rosbags-image`` would route the same through OpenCV, an extra
60 MB dependency for no gain here.

Results: the mask of every object as one ``mono8`` image of the frame's size (``mask_image``: 0 background,
object k of N at ``255 * k // N``, so one object is 255 and a later object wins where masks overlap), and
the answer as ``std_msgs/msg/String`` JSON (``result_json``), both stamped with the frame's header.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..errors import InputError

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)

#: encoding -> (channels, channel order of the data as stored). Aliases as ``cv_bridge`` reads them.
ENCODINGS: dict[str, tuple[int, str]] = {
    "rgb8": (3, "rgb"),
    "bgr8": (3, "bgr"),
    "rgba8": (4, "rgb"),
    "bgra8": (4, "bgr"),
    "mono8": (1, "mono"),
    "8uc3": (3, "bgr"),
    "8uc1": (1, "mono"),
    "8uc4": (4, "bgr"),
}


def _refuse(encoding: str) -> InputError:
    low = encoding.lower()
    if low.startswith("bayer"):
        hint = "debayer it first (image_proc's debayer node publishes rgb8/bgr8 on image_color)"
    elif any(t in low for t in ("16", "32", "64")):
        hint = "this looks like a depth or 16-bit image; pass the colour camera's topic (rgb8/bgr8/mono8)"
    else:
        hint = f"publish rgb8, bgr8, rgba8, bgra8 or mono8 (supported: {', '.join(sorted(ENCODINGS))})"
    return InputError(f"sensor_msgs/Image encoding {encoding!r} is not supported", hint=hint)


def image_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/msg/Image`` -> ``(height, width, 3)`` uint8 RGB (a copy).

    Raises:
        InputError: an unsupported encoding (depth, 16-bit, float, Bayer), or data shorter than
            ``step * height`` / a ``step`` shorter than a row.
    """
    encoding = str(msg.encoding)
    if encoding.lower() not in ENCODINGS:
        raise _refuse(encoding)
    channels, order = ENCODINGS[encoding.lower()]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, np.uint8)
    if h == 0 or w == 0:
        raise InputError(f"an empty {w}x{h} image message", hint="check the camera driver's output")
    if step < w * channels or data.size < step * h:
        raise InputError(
            f"image message of {w}x{h} {encoding} with step {step} holds {data.size} bytes (needs {step * h}, "
            f"step >= {w * channels})",
            hint="the message is truncated or its step is wrong",
        )
    rows = data[: step * h].reshape(h, step)[:, : w * channels].reshape(h, w, channels)
    if order == "mono":
        return np.repeat(rows, 3, axis=2)
    rgb = rows[..., :3]
    return np.ascontiguousarray(rgb[..., ::-1] if order == "bgr" else rgb)


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/msg/CompressedImage`` (JPEG, PNG, ...) -> ``(H, W, 3)`` uint8 RGB.

    Raises:
        InputError: ``compressedDepth`` images, or bytes Pillow cannot decode.
    """
    from PIL import Image, UnidentifiedImageError

    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower().replace(" ", ""):
        raise InputError(
            f"CompressedImage format {fmt!r} is a depth image", hint="pass the colour camera's compressed topic"
        )
    try:
        with Image.open(io.BytesIO(bytes(msg.data))) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(f"cannot decode a CompressedImage ({fmt!r}): {exc}", hint="publish JPEG or PNG") from exc


def to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """Either image type -> ``(H, W, 3)`` uint8 RGB."""
    if msgtype == IMAGE:
        return image_to_rgb(msg)
    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_rgb(msg)
    raise InputError(f"{msgtype} is not an image message", hint=f"pick a topic of type {' or '.join(IMAGE_TYPES)}")


def mask_image(masks: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """``[N, H, W]`` bool masks -> one ``(H, W)`` uint8 label image (object k of N at ``255 * k // N``;
    all zeros when N is 0)."""
    w, h = size_wh
    out = np.zeros((h, w), np.uint8)
    n = len(masks)
    for k, m in enumerate(masks, 1):
        out[m] = 255 * k // n
    return out


def mask_fields(label: np.ndarray) -> dict[str, Any]:
    """The fields of a ``mono8`` ``sensor_msgs/msg/Image`` holding ``label`` (header not included)."""
    h, w = label.shape
    return {"height": h, "width": w, "encoding": "mono8", "is_bigendian": 0, "step": w, "data": label.tobytes()}


def result_json(res: Any, *, stamp: tuple[int, int], frame_id: str, frame: int) -> str:
    """The JSON of a ``Segmentation`` for the result topic: the frame's stamp and id, per object the mask's
    box and the prompt box (``[x1, y1, x2, y2]`` frame pixels, null when absent), the prompt points, SAM2's
    score, the object score and the lost flag; on frames the reasoner answered for, ``answer`` (its box and
    points per object, else null), and the reasoning."""

    def box(b) -> list[float] | None:
        return None if b is None else [round(float(v), 2) for v in b]

    objects = [
        {
            "box": box(o.box),
            "prompt_box": box(o.prompt_box),
            "points": [[round(float(x), 2), round(float(y), 2)] for x, y in o.points],
            "score": round(float(o.score), 5),
            "object_score": round(float(o.object_score), 4),
            "lost": bool(o.lost),
        }
        for o in res.objects
    ]
    record = {
        "stamp": {"sec": int(stamp[0]), "nanosec": int(stamp[1])},
        "frame_id": frame_id,
        "frame": frame,
        "found": bool(res.found),
        "lost": bool(getattr(res, "lost", False)),
        "error": res.error,
        "objects": objects,
        "answer": None,
        "reasoning": res.reasoning,
    }
    answer = getattr(res, "answer", None)
    if answer is not None and answer.ok:  # a frame the reasoner answered for (or whose answer was applied)
        record["answer"] = [
            {"box": box(o.box), "points": [[round(float(x), 2), round(float(y), 2)] for x, y in o.points]}
            for o in answer.objects
        ]
    return json.dumps(record)


def stamp_of(msg: Any) -> tuple[int, int]:
    """``(sec, nanosec)`` of a message's header."""
    return int(msg.header.stamp.sec), int(msg.header.stamp.nanosec)
