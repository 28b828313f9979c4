"""Is a subscribed stream arriving? Frames taken, samples the middleware reports lost, publishers seen.

A node feeds ``StreamHealth`` from its subscription (``frame``), the subscription's message-lost event
(``lost``) and, once a period, the topic's publisher count (``check``); ``check`` says whether frames flow,
and if not, why it looks so and what to do. ROS-free: the node does the ROS calls.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

OK, WARN = "ok", "warn"
TRANSPORT_HINT = (
    "frames larger than Fast DDS's 512 KB shared-memory segment are lost between processes unless the "
    "publisher's process has a larger one: give the camera driver segzero_ros's config/fastdds_shm.xml "
    "(FASTDDS_DEFAULT_PROFILES_FILE), or use compressed_input; README 'Cameras and transport'"
)


@dataclass
class StreamVerdict:
    """What ``StreamHealth.check`` found: ``level`` ok or warn, a message, the received rate and loss."""

    level: str
    message: str
    rate_hz: float
    lost: int  # samples reported lost in the window
    publishers: int


class StreamHealth:
    """Frames and losses over the last ``window_s`` seconds of one topic; see the module docstring."""

    def __init__(
        self,
        topic: str,
        stall_s: float = 3.0,
        silent_s: float = 10.0,
        window_s: float = 5.0,
        max_lost_fraction: float = 0.5,
        no_publisher_s: float = 5.0,
    ) -> None:
        self.topic = topic
        self.stall_s = stall_s  # no frame this long while the middleware reports losses: frames are being lost
        self.silent_s = silent_s  # no frame this long and no loss reported: the publisher may not be sending
        self.window_s = window_s
        self.max_lost_fraction = max_lost_fraction
        self.no_publisher_s = no_publisher_s  # no publisher this long: nothing will come (a wrong topic name?)
        self._no_publisher_since: float | None = None
        self._frames: collections.deque[float] = collections.deque()
        self._lost: collections.deque[tuple[float, int]] = collections.deque()
        self._lost_total = 0
        self._last_frame: float | None = None
        self._publishers_since: float | None = None

    def frame(self, now: float) -> None:
        """A frame arrived (called from the subscription callback: cheap)."""
        self._frames.append(now)
        self._last_frame = now

    def lost(self, total_count: int, now: float) -> None:
        """The middleware's running count of samples lost on this subscription."""
        if total_count > self._lost_total:
            self._lost.append((now, total_count - self._lost_total))
            self._lost_total = total_count

    def check(self, publishers: int, now: float) -> StreamVerdict:
        """The verdict now, given how many publishers the topic has."""
        start = now - self.window_s
        while self._frames and self._frames[0] < start:
            self._frames.popleft()
        while self._lost and self._lost[0][0] < start:
            self._lost.popleft()
        if publishers <= 0:
            self._publishers_since = None
        elif self._publishers_since is None:
            self._publishers_since = now
        received, lost = len(self._frames), sum(n for _, n in self._lost)
        rate = received / self.window_s
        verdict = StreamVerdict(OK, f"{self.topic}: {rate:.1f} Hz", rate, lost, publishers)
        if publishers <= 0:
            if self._no_publisher_since is None:
                self._no_publisher_since = now
            verdict.message = f"no publisher on {self.topic}"
            if now - self._no_publisher_since >= self.no_publisher_s:
                verdict.level = WARN
                verdict.message += (
                    f" for {now - self._no_publisher_since:.0f} s: is the camera driver running, and does its topic"
                    " match this one (remap image:=/your/camera/topic, or launch image_topic:=...)?"
                )
            return verdict
        self._no_publisher_since = None
        silent_for = now - max(self._last_frame or self._publishers_since, self._publishers_since)
        if silent_for >= (self.stall_s if lost else self.silent_s):
            verdict.level = WARN
            seen = f"{lost} lost in transport in {self.window_s:g} s" if lost else "none reported lost"
            verdict.message = (
                f"{self.topic} has {publishers} publisher(s) but no frame arrived for {silent_for:.0f} s "
                f"({seen}): {'' if lost else 'the publisher may not be sending; if it is, '}{TRANSPORT_HINT}"
            )
        elif lost and lost / (lost + received) > self.max_lost_fraction:
            verdict.level = WARN
            verdict.message = (
                f"{self.topic}: {lost} of {lost + received} frames lost in transport in {self.window_s:g} s "
                f"({rate:.1f} Hz arrive): {TRANSPORT_HINT}"
            )
        return verdict
