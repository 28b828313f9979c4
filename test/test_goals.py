"""Goal messages: plain text or flat JSON, from the bytes of any CDR encapsulation; bounded before parsing."""

from __future__ import annotations

import json
import struct
import sys

import pytest

from segzero_ros.goals import goal_from_cdr, goal_from_message, goal_id_in, json_nesting, string_from_cdr


@pytest.mark.parametrize(
    ("data", "text", "goal_id", "multi", "error"),
    [
        ("the red cup", "the red cup", None, None, None),
        ('{"id": "7", "text": "a cup", "multi": true}', "a cup", "7", True, None),
        ('{"id": 12, "text": "a cup"}', "a cup", "12", None, None),
        ('{"text": "a cup", "extra": 1}', "a cup", None, None, "unknown goal field(s): extra"),
        ('{"text": "a cup", "multi": "yes"}', "a cup", None, None, "'multi' must be true or false, got 'yes'"),
        ("[1, 2]", "[1, 2]", None, None, None),  # not an object: plain text (the pipeline judges it)
        ('{"a": ', '{"a": ', None, None, "malformed JSON goal"),
        ("{}", "", None, None, None),  # empty text: the pipeline answers "empty goal"
        ('{"id": "n", "text": {"a": 1}}', '{"id": "n", "text": {"a": 1}}', "n", None, "malformed JSON goal: must be"),
    ],
)
def test_goal_from_message(data, text, goal_id, multi, error):
    goal = goal_from_message(data)
    assert goal.text == text and goal.multi == multi
    if goal_id:
        assert goal.id == goal_id
    assert (goal.error or "").startswith(error or "") and bool(goal.error) == bool(error)


def test_plain_goal_too_long():
    assert "too long" in goal_from_message("x" * 20_000, max_chars=10_000).error
    assert goal_from_message("x" * 20_000, max_chars=30_000).error is None  # the limit given, not a fixed one


def test_deeply_nested_json_is_refused_before_parsing_under_its_own_id():
    # json.loads raises RecursionError (not a ValueError) on this; it must never get that far.
    bomb = '{"id": "bomb", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    goal = goal_from_message(bomb, max_chars=100_000)
    assert goal.id == "bomb" and goal.error.startswith("malformed JSON goal: must be a flat object")
    no_id = '{"text": ' + "[" * 1000 + "]" * 1000 + "}"
    assert goal_from_message(no_id).error.startswith("malformed JSON goal")
    assert json_nesting(bomb) == 100_001 and json_nesting('{"text": "[[[{{{"}') == 1  # strings do not count


def test_oversized_json_goal_is_answered_under_its_own_id():
    goal = goal_from_message(json.dumps({"text": "x" * 200_000, "id": "huge-1"}), max_chars=2000)
    assert goal.id == "huge-1" and goal.error.startswith("goal message too long")
    assert len(goal.text) <= 81  # the answer's goal text is shortened
    # Within the message limit, a JSON goal's text is judged against max_chars by the pipeline (check_goal).
    assert goal_from_message(json.dumps({"text": "é" * 2500, "id": "e"}), max_chars=3000).error is None


def test_goal_id_is_read_without_parsing():
    assert goal_id_in('{"text": "x", "id": "a \\"b\\" c"') == 'a "b" c'
    assert goal_id_in('{"id": 42, "text": [[[') == "42"
    assert goal_id_in('{"text": "the \\"id\\": \\"no\\" cup"}') is None  # inside a string: not a field
    assert goal_id_in('{"text": "cup"}') is None


def _cdr(payload: bytes, kind: int = 1) -> bytes:
    order = "<" if kind in (1, 7, 9) else ">"
    body = struct.pack(order + "I", len(payload) + 1) + payload + b"\x00"
    if kind in (8, 9):  # appendable XCDR2: a delimiter header with the member bytes' size first
        body = struct.pack(order + "I", len(body)) + body
    return struct.pack(">H", kind) + b"\x00\x00" + body


@pytest.mark.parametrize("kind", [0x0000, 0x0001, 0x0006, 0x0007, 0x0008, 0x0009])
def test_every_encapsulation_a_ros_rmw_may_use(kind):
    goal = goal_from_cdr(_cdr(json.dumps({"id": "q", "text": "la tasse à café"}).encode(), kind))
    assert (goal.id, goal.text, goal.error) == ("q", "la tasse à café", None)


def test_malformed_messages_give_goals_with_the_reason():
    assert "not valid UTF-8" in goal_from_cdr(_cdr(b"\xff\xfe")).error
    bad_utf8_json = goal_from_cdr(_cdr(b'{"id": "u8", "text": "\xff"}'))
    assert bad_utf8_json.id == "u8" and "not valid UTF-8" in bad_utf8_json.error
    assert "too short" in goal_from_cdr(b"\x00\x01").error
    assert "unsupported CDR encapsulation 0x000a" in goal_from_cdr(b"\x00\x0a\x00\x00" + bytes(12)).error
    assert "length out of range" in goal_from_cdr(b"\x00\x01\x00\x00" + struct.pack("<I", 99) + b"ab\x00").error
    assert "delimiter" in goal_from_cdr(b"\x00\x09\x00\x00" + struct.pack("<I", 999) + bytes(8)).error


def test_cdr_matches_rclpy_serialization():
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    assert string_from_cdr(serialize_message(String(data="the red cup"))) == b"the red cup"
    assert string_from_cdr(_cdr(b"ab", 0)) == b"ab"  # big endian


def test_recursion_limit_is_not_what_protects_us():
    # The nesting bound holds whatever the interpreter's recursion limit.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        deep = '{"text": ' + "[" * 5000 + "]" * 5000 + "}"
        assert goal_from_message(deep, max_chars=10_000).error.startswith("malformed JSON goal: must be")
    finally:
        sys.setrecursionlimit(limit)
