"""The answer drawn over the camera image: ``foxglove_msgs/msg/ImageAnnotations``, for bags and the node.

Foxglove's Image panel overlays this message on the image topic it is stamped like (no plugin): per object
its box as a closed polygon, its prompt points as dots (both in the object's colour), and a label with the
object's number and SAM2 score, or ``lost``. ``ImageAnnotations`` is Foxglove's schema, published for ROS 2
as the ``foxglove_msgs`` package (in the ROS distributions); ``MSGDEF`` below is its ROS 2 message
definition as the MCAP writer embeds it (field order as in ``foxglove_msgs`` 3.x). RViz has no display
for it; RViz users look at the mask topic.

Coordinates are frame pixels with the origin at the top-left corner of the top-left pixel, the convention of
our boxes and points.
"""

from __future__ import annotations

from typing import Any

IMAGE_ANNOTATIONS = "foxglove_msgs/msg/ImageAnnotations"

#: points annotation types (``PointsAnnotation.type``)
POINTS, LINE_LOOP = 1, 2

#: ROS 2 message definition of ``foxglove_msgs/msg/ImageAnnotations`` with its dependencies.
MSGDEF = """foxglove_msgs/CircleAnnotation[] circles
foxglove_msgs/PointsAnnotation[] points
foxglove_msgs/TextAnnotation[] texts
================================================================================
MSG: foxglove_msgs/CircleAnnotation
builtin_interfaces/Time timestamp
foxglove_msgs/Point2 position
float64 diameter
float64 thickness
foxglove_msgs/Color fill_color
foxglove_msgs/Color outline_color
================================================================================
MSG: foxglove_msgs/PointsAnnotation
uint8 UNKNOWN=0
uint8 POINTS=1
uint8 LINE_LOOP=2
uint8 LINE_STRIP=3
uint8 LINE_LIST=4
builtin_interfaces/Time timestamp
uint8 type
foxglove_msgs/Point2[] points
foxglove_msgs/Color outline_color
foxglove_msgs/Color[] outline_colors
foxglove_msgs/Color fill_color
float64 thickness
================================================================================
MSG: foxglove_msgs/TextAnnotation
builtin_interfaces/Time timestamp
foxglove_msgs/Point2 position
string text
float64 font_size
foxglove_msgs/Color text_color
foxglove_msgs/Color background_color
================================================================================
MSG: foxglove_msgs/Point2
float64 x
float64 y
================================================================================
MSG: foxglove_msgs/Color
float64 r
float64 g
float64 b
float64 a
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec
"""

#: Object colours (RGB 0..1), cycled: the overlay palette's order.
PALETTE = ((1.0, 0.85, 0.0), (0.0, 0.8, 1.0), (1.0, 0.3, 0.6), (0.4, 1.0, 0.3), (1.0, 0.55, 0.1))
_CLEAR = {"r": 0.0, "g": 0.0, "b": 0.0, "a": 0.0}


def _color(k: int, alpha: float = 1.0) -> dict[str, float]:
    r, g, b = PALETTE[k % len(PALETTE)]
    return {"r": r, "g": g, "b": b, "a": alpha}


def image_annotations(res: Any, stamp: tuple[int, int]) -> dict[str, Any]:
    """The ``ImageAnnotations`` of a ``Segmentation`` as nested dicts with the ROS field names (what the
    MCAP writer takes; ``wire.annotations_message`` makes the DDS type of it). The box of an object is its
    mask's box, else its prompt box; a lost object gets only its label."""
    time = {"sec": int(stamp[0]), "nanosec": int(stamp[1])}
    points, texts = [], []
    for k, o in enumerate(res.objects):
        box = o.box if o.box is not None else o.prompt_box
        if box is not None and not o.lost:
            x1, y1, x2, y2 = (float(v) for v in box)
            corners = [{"x": x1, "y": y1}, {"x": x2, "y": y1}, {"x": x2, "y": y2}, {"x": x1, "y": y2}]
            points.append(_points(time, LINE_LOOP, corners, _color(k), 2.0))
        if o.points and not o.lost:
            dots = [{"x": float(x), "y": float(y)} for x, y in o.points]
            points.append(_points(time, POINTS, dots, _color(k), 6.0))
        label = f"{k + 1}: lost" if o.lost else f"{k + 1}: {o.score:.2f}"
        if box is not None:  # above the box's top-left corner (the text's origin is its bottom-left)
            anchor = {"x": float(box[0]), "y": max(float(box[1]) - 4.0, 12.0)}
        else:
            anchor = {"x": 4.0, "y": 16.0 * (k + 1)}
        texts.append(
            {
                "timestamp": time,
                "position": anchor,
                "text": label,
                "font_size": 14.0,
                "text_color": {"r": 1.0, "g": 1.0, "b": 1.0, "a": 1.0},
                "background_color": _color(k, 0.7),
            }
        )
    return {"circles": [], "points": points, "texts": texts}


def _points(time: dict, kind: int, pts: list[dict], color: dict, thickness: float) -> dict[str, Any]:
    return {
        "timestamp": time,
        "type": kind,
        "points": pts,
        "outline_color": color,
        "outline_colors": [],
        "fill_color": color if kind == POINTS else _CLEAR,
        "thickness": thickness,
    }
