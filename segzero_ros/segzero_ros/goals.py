"""Goal messages as they arrive: the bytes of a ``std_msgs/String`` (CDR or XCDR2) → text → ``Goal``.

A goal is plain text, or a flat JSON object ``{"id", "text", "multi"}``. Everything is bounded before it is
parsed (message size, JSON nesting), so no message can raise out of here: a malformed one still gives a
``Goal`` with ``error`` set, under its own id whenever the id can be read, and is answered like any other.
"""

from __future__ import annotations

import json
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

GOAL_FIELDS = ("id", "text", "multi")
DEFAULT_MAX_CHARS = 2000
# A JSON goal may be longer than its text: field names, the id, and escapes (\uXXXX: 6 characters each).
JSON_ESCAPE_FACTOR = 6
JSON_OVERHEAD_CHARS = 1024
MAX_ID_CHARS = 200

# RTPS encapsulation identifiers (DDS-XTypes 1.3, 7.6.3.1.2) a std_msgs/String may arrive in:
# identifier -> (little endian, bytes of the delimiter header before the first member).
ENCAPSULATIONS: dict[int, tuple[bool, int]] = {
    0x0000: (False, 0),  # CDR_BE (XCDR1)
    0x0001: (True, 0),  # CDR_LE
    0x0006: (False, 0),  # CDR2_BE (XCDR2, final types)
    0x0007: (True, 0),  # CDR2_LE
    0x0008: (False, 4),  # D_CDR2_BE (XCDR2, appendable types: a uint32 DHEADER first)
    0x0009: (True, 4),  # D_CDR2_LE
}

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_ID = re.compile(r'"id"\s*:\s*(?:"((?:[^"\\]|\\.){0,' + str(MAX_ID_CHARS) + r'})"|(-?\d{1,30}))', re.DOTALL)


class GoalError(ValueError):
    """The goal text cannot be used (empty, too long, not text)."""


def check_goal(goal: Any, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The goal stripped of surrounding white space; ``GoalError`` when it is unusable."""
    if not isinstance(goal, str):
        raise GoalError(f"goal must be text, got {type(goal).__name__}")
    text = goal.strip()
    if not text or not text.strip(". "):
        raise GoalError("empty goal")
    if len(text) > max_chars:
        raise GoalError(f"goal too long: {len(text)} characters (limit {max_chars})")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in text):
        raise GoalError("goal contains control characters")
    return text


def new_goal_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass
class Goal:
    """A request: text, id, optional protocol choice (multi) and when it arrived."""

    text: Any
    id: str = field(default_factory=new_goal_id)
    multi: bool | None = None
    received: float = field(default_factory=time.monotonic)
    error: str | None = None  # set when the goal was malformed before it reached the queue
    frame: Any = None  # a worker.Frame to use instead of the newest camera frame (action goals)
    reacquired: bool = False  # run again by the tracker after its targets were lost
    answered: bool = False  # set by the worker when the goal's one result is sent
    untracked: bool = False  # cancelled while it ran: its answer stands, its targets are not tracked

    def describe(self) -> str:
        """One line for the log: id, text (shortened), and why it is refused."""
        return f"goal {self.id}: {str(self.text)[:120]!r}" + (f" ({self.error})" if self.error else "")

    def check(self, max_chars: int) -> Goal:
        """Refuse unusable text now (``error``), rather than after the goal waited in the queue."""
        if self.error is None:
            try:
                check_goal(self.text, max_chars)
            except GoalError as exc:
                self.error = str(exc)
        return self


def json_nesting(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (string contents ignored); linear, no recursion."""
    depth = deepest = 0
    for char in re.findall(r"[\[\]{}]", _JSON_STRING.sub('""', text)):
        depth = depth + 1 if char in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def goal_id_in(text: str) -> str | None:
    """The ``"id"`` of a JSON goal read without parsing it (for answering a goal too broken to parse)."""
    match = _JSON_ID.search(text)
    if match is None:
        return None
    if match.group(2) is not None:
        return match.group(2)
    try:
        value = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return None
    return value or None


def goal_from_message(data: str, max_chars: int = DEFAULT_MAX_CHARS) -> Goal:
    """A ``Goal`` from a goal topic's text: plain text, or JSON ``{"id", "text", "multi"}``."""
    stripped = data.strip()
    if not stripped.startswith("{"):
        if len(data) > max_chars:
            return Goal(text=data[:80] + "…", error=f"goal too long: {len(data)} characters (limit {max_chars})")
        return Goal(text=data)
    goal = Goal(text=data[:80] + "…" if len(data) > 80 else data)  # the text of an answer if it stays malformed
    goal.id = goal_id_in(stripped) or goal.id
    limit = JSON_ESCAPE_FACTOR * max_chars + JSON_OVERHEAD_CHARS
    if len(stripped) > limit:
        goal.error = f"goal message too long: {len(stripped)} characters (limit {limit} for a JSON goal)"
        return goal
    if json_nesting(stripped) > 1:
        goal.error = f"malformed JSON goal: must be a flat object with fields {', '.join(GOAL_FIELDS)}"
        return goal
    try:
        fields = json.loads(stripped)
    except (ValueError, RecursionError) as exc:
        goal.error = f"malformed JSON goal: {exc}"
        return goal
    if not isinstance(fields, dict):
        goal.error = "JSON goal must be an object"
        return goal
    goal_id = fields.get("id")
    if goal_id not in (None, ""):
        goal.id = str(goal_id)[:MAX_ID_CHARS]
    goal.text = fields.get("text", "")
    multi = fields.get("multi")
    if multi is not None and not isinstance(multi, bool):
        goal.error = f"'multi' must be true or false, got {multi!r:.40}"
    goal.multi = multi if isinstance(multi, bool) else None
    unknown = sorted(set(fields) - set(GOAL_FIELDS))
    if unknown:
        goal.error = goal.error or f"unknown goal field(s): {', '.join(map(str, unknown))[:200]}"
    return goal


def string_from_cdr(data: bytes) -> bytes:
    """The payload bytes of a serialized ``std_msgs/String``: a 4-byte encapsulation header (CDR or XCDR2,
    either endianness), for appendable XCDR2 a uint32 delimiter, then a uint32 length, the bytes and a NUL."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes: too short for a serialized string")
    (kind,) = struct.unpack_from(">H", data, 0)
    if kind not in ENCAPSULATIONS:
        raise ValueError(f"unsupported CDR encapsulation 0x{kind:04x}")
    little, skip = ENCAPSULATIONS[kind]
    order = "<" if little else ">"
    offset = 4 + skip
    if len(data) < offset + 4:
        raise ValueError(f"{len(data)} bytes: too short for a serialized string")
    if skip:
        (delimited,) = struct.unpack_from(order + "I", data, 4)
        if delimited < 4 or 8 + delimited > len(data):
            raise ValueError("XCDR2 delimiter header out of range")
    (length,) = struct.unpack_from(order + "I", data, offset)
    start = offset + 4
    if length == 0 or start + length > len(data):
        raise ValueError("CDR string length out of range")
    return bytes(data[start : start + length - 1])


def goal_from_cdr(data: bytes, max_chars: int = DEFAULT_MAX_CHARS) -> Goal:
    """A ``Goal`` from a serialized goal message, so that invalid UTF-8 gives an error result, not a crash."""
    try:
        payload = string_from_cdr(data)
    except ValueError as exc:
        return Goal(text="", error=f"malformed goal message: {exc}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = payload[: JSON_ESCAPE_FACTOR * max_chars + JSON_OVERHEAD_CHARS].decode("utf-8", "replace")
        goal = Goal(text=payload[:80].decode("utf-8", "replace"), error=f"goal is not valid UTF-8: {exc.reason}")
        if head.lstrip().startswith("{"):
            goal.id = goal_id_in(head) or goal.id
        return goal
    return goal_from_message(text, max_chars)


def checked_goal_from_cdr(data: bytes, max_chars: int = DEFAULT_MAX_CHARS) -> Goal:
    """``goal_from_cdr`` with the goal text checked too (empty, too long, control characters)."""
    return goal_from_cdr(data, max_chars).check(max_chars)
