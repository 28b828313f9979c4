"""Seg-Zero answer protocol: prompt text, answer parsing and coordinate scaling.

Shared by inference (``reasoner``) and training (``training.rewards``). Two protocols:
``segzero`` (one object, ``bbox`` + two points; the released Seg-Zero models) and
``multi`` (a list of ``bbox_2d`` + ``point_2d``; VisionReasoner). ``strict=True`` accepts
exactly what the reference inference code accepts; the default lenient mode also repairs
what real models emit.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

PROTOCOLS: tuple[str, ...] = ("segzero", "multi")
Rounding = Literal["segzero", "multi"] | None

# The reference's prompt pieces, joined without separators (segzero-reference.md).
_TEMPLATES: dict[str, str] = {
    "segzero": (
        "Please find '{Question}' with bbox and points."
        "Compare the difference between objects and find the most closely matched one."
        "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
        "Output the one bbox and points of two largest inscribed circles inside the interested object "
        "in JSON format."
        "i.e., <think> thinking process here </think>"
        "<answer>{Answer}</answer>"
    ),
    "multi": (
        'Please find "{Question}" with bboxs and points.'
        "Compare the difference between object(s) and find the most closely matched object(s)."
        "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."
        "Output the bbox(es) and point(s) inside the interested object(s) in JSON format."
        "i.e., <think> thinking process here </think>"
        "<answer>{Answer}</answer>"
    ),
}
_ANSWER_EXAMPLES: dict[str, str] = {
    "segzero": "{'bbox': [10,100,200,210], 'points_1': [30,110], 'points_2': [35,180]}",
    "multi": '[{"bbox_2d": [10,100,200,210], "point_2d": [30,110]}, '
    '{"bbox_2d": [225,296,706,786], "point_2d": [302,410]}]',
}

# Reference regular expressions.
THINK_RE = re.compile(r"<think>([^<]+)</think>")
FIRST_OBJECT_RE = re.compile(r"{[^}]+}")
ANSWER_END = "</answer>"  # the last thing a complete answer writes (generation may stop there)
MULTI_ANSWER_RE = re.compile(r"<answer>\s*(.*?)\s*</answer>", re.DOTALL)

# Lenient-mode limits.
MAX_ANSWER_CHARS = 20_000
MAX_NESTING = 16
MAX_TARGETS = 120
MAX_LABEL_CHARS = 200  # a per-object label the model wrote is cut to this
MAX_ABS_COORD = 100_000.0


class AnswerFormatError(ValueError):
    """The model's answer cannot be turned into targets; the message says why."""


@dataclass(frozen=True)
class Target:
    """One object: a box (x1, y1, x2, y2) and prompt points (x, y), in one image frame; ``label``: what the
    model called it, when its answer names each object (a ``"label"`` key; the lenient parser only)."""

    bbox: tuple[float, float, float, float]
    points: list[tuple[float, float]] = field(default_factory=list)
    label: str | None = None


@dataclass(frozen=True)
class Answer:
    """A parsed model answer: the think text (None when absent) and the targets."""

    think: str | None
    targets: list[Target]
    warnings: list[str] = field(default_factory=list)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def normalize_goal(goal: str) -> str:
    """The goal as the reference puts it in the prompt: lower-cased, "." stripped from both ends."""
    return goal.lower().strip(".")


def build_prompt(goal: str, protocol: str = "segzero") -> str:
    """The reference's user-turn prompt text for ``goal``."""
    _check_protocol(protocol)
    return _TEMPLATES[protocol].format(Question=normalize_goal(goal), Answer=_ANSWER_EXAMPLES[protocol])


def parse_answer(text: str, protocol: str = "segzero", strict: bool = False) -> Answer:
    """Parse a model answer into targets in the model's frame; raise ``AnswerFormatError`` if unusable."""
    _check_protocol(protocol)
    if not isinstance(text, str):
        raise AnswerFormatError(f"answer must be a string, got {type(text).__name__}")
    try:
        if strict:
            return _parse_strict_segzero(text) if protocol == "segzero" else _parse_strict_multi(text)
        return _parse_lenient(text, protocol)
    except AnswerFormatError:
        raise
    except Exception as exc:  # the parser's promise: nothing but AnswerFormatError escapes
        raise AnswerFormatError(f"unparseable answer: {type(exc).__name__}: {exc}") from None


# --- strict: the reference's inference extraction -------------------------------------------


def _parse_strict_segzero(text: str) -> Answer:
    """Mirror the reference ``segzero`` extraction: first ``{...}``, keys by substring, ``int()``."""
    match = FIRST_OBJECT_RE.search(text)
    if match is None:
        raise AnswerFormatError("no JSON object in the answer")
    data = json.loads(match.group(0))
    bbox_key = next((k for k in data if "bbox" in k.lower()), None)
    if bbox_key is None or len(data[bbox_key]) != 4:
        raise AnswerFormatError("no 'bbox' key with 4 values")
    raw = data[bbox_key]
    x1, y1, x2, y2 = (float(int(raw[i])) for i in range(4))
    point_keys = [k for k in data if "points" in k.lower()][:2]
    if len(point_keys) != 2:
        raise AnswerFormatError("fewer than two 'points' keys")
    points = [(float(int(data[k][0])), float(int(data[k][1]))) for k in point_keys]
    think = THINK_RE.search(text)
    if think is None:
        raise AnswerFormatError("no <think> text matching the reference pattern")
    return Answer(think=think.group(1), targets=[Target(bbox=(x1, y1, x2, y2), points=points)])


def _parse_strict_multi(text: str) -> Answer:
    """Mirror the reference ``multi`` extraction: JSON list in ``<answer>``, ``bbox_2d``/``point_2d``."""
    match = MULTI_ANSWER_RE.search(text)
    if match is None:
        raise AnswerFormatError("no <answer>...</answer> block")
    data = json.loads(match.group(1))
    targets = []
    for item in data:
        box, point = item["bbox_2d"], item["point_2d"]
        values = [box[0], box[1], box[2], box[3], point[0], point[1]]
        # The reference computes int(v * factor + 0.5): anything that is not a number fails there.
        for v in values:
            int(v * 1.0 + 0.5)  # fails (TypeError, ValueError, OverflowError) where the reference does
        x1, y1, x2, y2, px, py = (float(v) for v in values)
        targets.append(Target(bbox=(x1, y1, x2, y2), points=[(px, py)]))
    think = THINK_RE.search(text)
    return Answer(think=think.group(1) if think else "", targets=targets)


# --- lenient: what real models emit ---------------------------------------------------------

_FENCE_RE = re.compile(r"```(?:json|JSON|python)?\s*(.*?)\s*```", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([\]}])")
_THINK_LENIENT_RE = re.compile(r"<think>(.*?)(?:</think>|<answer>|$)", re.DOTALL)
_ANSWER_LENIENT_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


def _parse_lenient(text: str, protocol: str) -> Answer:
    think_match = _THINK_LENIENT_RE.search(text)
    think = think_match.group(1).strip() if think_match else None
    answer_match = _ANSWER_LENIENT_RE.search(text)
    if answer_match is None:
        raise AnswerFormatError("no <answer> tag in the model output")
    body = answer_match.group(1).strip()
    fence = _FENCE_RE.search(body)
    if fence:
        body = fence.group(1)
    if not body:
        raise AnswerFormatError("empty <answer>")
    if len(body) > MAX_ANSWER_CHARS:
        raise AnswerFormatError(f"answer longer than {MAX_ANSWER_CHARS} characters")
    objects = _objects_from(_loads_lenient(body))
    if not objects:
        raise AnswerFormatError("the answer names no object")
    if len(objects) > MAX_TARGETS:
        raise AnswerFormatError(f"more than {MAX_TARGETS} objects in the answer")
    targets, problems = [], []
    for i, obj in enumerate(objects):
        try:
            targets.append(_target_from(obj, i))
        except AnswerFormatError as exc:
            problems.append(f"dropped {exc}")
    if not targets:
        raise AnswerFormatError(problems[0].removeprefix("dropped ") if len(problems) == 1 else "; ".join(problems))
    return Answer(think=think, targets=targets, warnings=problems)


def _nesting_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]})":
            depth -= 1
    return deepest


_NOT_PARSED = object()


def _try_loads(text: str) -> Any:
    """JSON, then a Python literal (single quotes, tuples), each also without trailing commas."""
    for candidate in (text, _TRAILING_COMMA_RE.sub(r"\1", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            pass
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            pass
    return _NOT_PARSED


def _loads_lenient(body: str) -> Any:
    """The answer's data: the whole body, else its outermost list or object, else every flat {...} in it."""
    if _nesting_depth(body) > MAX_NESTING:
        raise AnswerFormatError(f"answer nested deeper than {MAX_NESTING} levels")
    data = _try_loads(body)
    if data is not _NOT_PARSED:
        return data
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = body.find(opener), body.rfind(closer)
        if 0 <= start < end:
            data = _try_loads(body[start : end + 1])
            if data is not _NOT_PARSED:
                return data
    data = _try_loads(_close_truncated(body))
    if data is not _NOT_PARSED:
        return data
    found = [_try_loads(m.group(0)) for m in FIRST_OBJECT_RE.finditer(body)]
    found = [f for f in found if isinstance(f, dict)]
    if found:
        return found
    raise AnswerFormatError("the answer is not JSON (even after repairs)")


def _close_truncated(body: str) -> str:
    """Cut a truncated answer after its last complete value and close the brackets left open."""
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    end = max(body.rfind("]"), body.rfind("}"))
    if start < 0 or end <= start:
        return body
    head = body[start : end + 1]
    stack: list[str] = []
    in_string = False
    for ch in head:
        if ch == '"':
            in_string = not in_string
        elif not in_string and ch in "[{":
            stack.append("]" if ch == "[" else "}")
        elif not in_string and ch in "]}" and stack:
            stack.pop()
    return head + "".join(reversed(stack))


def _objects_from(data: Any) -> list[dict]:
    """Normalise a parsed answer to a list of object dicts."""
    if isinstance(data, dict):
        return [data]
    if isinstance(data, (list, tuple)):
        if data and all(_is_number(v) for v in data):
            return [{"bbox": list(data)}]
        objects = [item for item in data if isinstance(item, dict)]
        if len(objects) != len(data):
            raise AnswerFormatError("the answer list holds something other than objects")
        return objects
    raise AnswerFormatError(f"the answer is a {type(data).__name__}, not an object or a list")


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value.strip())
        except ValueError:
            return False
        return True
    return False


def _number(value: Any, what: str) -> float:
    if not _is_number(value):
        raise AnswerFormatError(f"{what} is not a number: {value!r:.40}")
    number = float(value.strip()) if isinstance(value, str) else float(value)
    if not math.isfinite(number):
        raise AnswerFormatError(f"{what} is not finite: {value!r:.40}")
    if abs(number) > MAX_ABS_COORD:
        raise AnswerFormatError(f"{what} is absurdly large: {value!r:.40}")
    return number


def _point(value: Any, what: str) -> tuple[float, float]:
    if isinstance(value, dict) and "x" in value and "y" in value:
        value = [value["x"], value["y"]]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise AnswerFormatError(f"{what} is not an [x, y] pair: {value!r:.60}")
    return (_number(value[0], what), _number(value[1], what))


def _target_from(obj: dict, index: int) -> Target:
    """Read one object's box and points, whatever the key spelling."""
    keys = {str(k).strip().lower(): v for k, v in obj.items()}
    box_key = next((k for k in ("bbox_2d", "bbox", "box_2d", "box") if k in keys), None)
    box_key = box_key or next((k for k in keys if "box" in k), None)
    if box_key is None:
        raise AnswerFormatError(f"object {index} has no bbox")
    box = keys[box_key]
    if isinstance(box, str):
        box = [part for part in re.split(r"[\s,\[\]()]+", box) if part]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise AnswerFormatError(f"object {index}: bbox needs 4 numbers, got {box!r:.60}")
    x1, y1, x2, y2 = (_number(v, f"object {index} bbox") for v in box)
    x1, x2 = min(x1, x2), max(x1, x2)
    y1, y2 = min(y1, y2), max(y1, y2)
    if x1 == x2 or y1 == y2:
        raise AnswerFormatError(f"object {index}: bbox has zero area {[x1, y1, x2, y2]}")
    points: list[tuple[float, float]] = []
    for key in sorted((k for k in keys if "point" in k), key=_point_key_order):
        value = keys[key]
        if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
            continue
        is_list_of_points = isinstance(value, (list, tuple)) and all(isinstance(v, (list, tuple, dict)) for v in value)
        for item in value if is_list_of_points else [value]:
            points.append(_point(item, f"object {index} {key}"))
    label = keys.get("label")
    label = " ".join(label.split())[:MAX_LABEL_CHARS] if isinstance(label, str) and label.strip() else None
    return Target(bbox=(x1, y1, x2, y2), points=points, label=label)


def _point_key_order(key: str) -> tuple[int, str]:
    """Order point keys as the model numbered them: point_2d, points_1, points_2, ..."""
    digits = re.findall(r"\d+", key.replace("2d", ""))
    return (int(digits[0]) if digits else 0, key)


# --- coordinates ------------------------------------------------------------------------------


def _rounder(rounding: Rounding):
    if rounding is None:
        return float
    if rounding == "segzero":
        return lambda v: float(round(v))
    if rounding == "multi":
        return lambda v: float(int(v + 0.5))
    raise ValueError(f"unknown rounding {rounding!r}; expected 'segzero', 'multi' or None")


def scale_targets(
    targets: Iterable[Target],
    from_wh: Sequence[float],
    to_wh: Sequence[int],
    rounding: Rounding = None,
    clip: bool = True,
) -> list[Target]:
    """Map targets from one frame (the reasoner's resized image) to another (the camera's).

    ``rounding`` reproduces the reference: ``"segzero"`` is ``round(v * f)``, ``"multi"`` is
    ``int(v * f + 0.5)``; None keeps floats. ``clip`` limits coordinates to pixel indices of ``to_wh``.
    """
    fx, fy = to_wh[0] / from_wh[0], to_wh[1] / from_wh[1]
    rnd = _rounder(rounding)
    max_x, max_y = float(to_wh[0] - 1), float(to_wh[1] - 1)

    def x(v: float) -> float:
        out = rnd(v * fx)
        return min(max(out, 0.0), max_x) if clip else out

    def y(v: float) -> float:
        out = rnd(v * fy)
        return min(max(out, 0.0), max_y) if clip else out

    return [
        Target(
            bbox=(x(t.bbox[0]), y(t.bbox[1]), x(t.bbox[2]), y(t.bbox[3])),
            points=[(x(px), y(py)) for px, py in t.points],
            label=t.label,
        )
        for t in targets
    ]


ROUNDING_OF_PROTOCOL: dict[str, Rounding] = {"segzero": "segzero", "multi": "multi"}


def partial_think(text: str) -> str:
    """The ``<think>`` text of a partly generated answer (what a user can read while the model writes)."""
    start = text.find("<think>")
    body = text[start + len("<think>") :] if start >= 0 else text
    end = body.find("</think>")
    return (body if end < 0 else body[:end]).strip()
