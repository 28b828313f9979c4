"""Ctrl-C and SIGTERM for the ``segzero`` commands: the first one stops the command, later ones are ignored, so
its clean-up (a goal cancelled on the node, a recording closed, rclpy shut down) is never cut short."""

from __future__ import annotations

import signal
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Within ``with StopSignals():`` the first SIGINT/SIGTERM raises KeyboardInterrupt (or, with ``raises`` off,
    only sets ``event`` for a loop that checks it); later ones are ignored until the block ends."""

    def __init__(self, raises: bool = True) -> None:
        self.raises = raises
        self.event = threading.Event()
        self.signum = 0
        self._previous: dict[int, Any] = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        """The shell's code for a command ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            return
        self.signum = signum
        self.event.set()
        if self.raises:
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
