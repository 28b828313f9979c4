"""A ROS 2 node as its own process: signals, a spin loop no callback can break, an orderly shutdown.

rclpy's own signal handler shuts the context down at the first SIGINT, before the node can answer the goals it
owes. Here SIGINT and SIGTERM only ask the spin loop to stop; the node then finishes (answers what it owes,
while it can still publish), and only then is the context shut down. Further signals during that are ignored,
so a second Ctrl-C (``ros2 launch`` forwards one) never lands in the middle of the clean-up.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn, Protocol

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions

from segzero_ros.ros import shared_memory, transport


class ManagedProcessNode(Protocol):
    """What ``run`` needs of a node (an ``rclpy.node.Node``) beyond rclpy's own."""

    def get_logger(self) -> Any: ...

    def destroy_node(self) -> None: ...

    def start(self) -> None:
        """Bring the node up (e.g. configure and activate it)."""

    def finish(self, spin: Callable[[float, Callable[[], bool]], None]) -> None:
        """Answer everything still owed while the context is valid; ``spin(seconds, done)`` runs callbacks."""

    def callback_failed(self, exc: BaseException) -> None:
        """A callback raised ``exc``: log it and count it; the process goes on."""


class StopRequest:
    """Set by SIGINT or SIGTERM; remembers the first signal, ignores the rest."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""
        self.ignored = 0

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.event.is_set():
            self.ignored += 1
            return
        self.signal_name = signal.Signals(signum).name
        self.event.set()


def spin_until(executor: SingleThreadedExecutor, done: Callable[[], bool], on_error: Callable[[BaseException], None]):
    """Run callbacks until ``done()``; an exception from a callback goes to ``on_error`` and spinning goes on."""
    while not done() and executor.context.ok():
        try:
            executor.spin_once(timeout_sec=0.05)
        except ExternalShutdownException:
            return
        except Exception as exc:
            on_error(exc)


def describe_exception(exc: BaseException) -> str:
    """One log entry for an exception: its type, text and traceback."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()


def run(make_node: Callable[[], ManagedProcessNode], argv: list[str] | None = None) -> NoReturn:
    """Console-script body: start the node, spin until a signal, finish it, exit 0."""
    try:
        transport_note = transport.apply_defaults(os.environ)
    except transport.TransportConfigError as exc:
        print(f"[FATAL] {exc}", file=sys.stderr, flush=True)
        os._exit(2)
    stop = StopRequest()
    stop.install()
    reclaimed = shared_memory.reclaim_stale()  # what killed processes left in /dev/shm
    rclpy.init(args=argv if argv is not None else sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    node = make_node()
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin(seconds: float, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        spin_until(executor, lambda: done() or time.monotonic() > deadline, node.callback_failed)

    node.get_logger().info(transport_note)
    if reclaimed.files:
        node.get_logger().info(f"{reclaimed.describe()} (left by processes that were killed)")
    try:
        node.start()
        spin_until(executor, stop.event.is_set, node.callback_failed)
        start = time.monotonic()
        node.get_logger().info(f"{stop.signal_name or 'context shut down'}: shutting down")
        try:
            node.finish(spin)
        except Exception as exc:  # the process still ends cleanly; what went wrong is in the log
            node.get_logger().error(f"shutdown incomplete: {describe_exception(exc)}")
        ignored = f" ({stop.ignored} further signal(s) ignored)" if stop.ignored else ""
        node.get_logger().info(f"shut down in {time.monotonic() - start:.1f} s{ignored}")
    finally:
        executor.remove_node(node)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    # Everything the node owns is released above. Interpreter finalisation of the loaded ML and DDS libraries
    # was seen to stall exit for over 25 s on a loaded machine, so the process ends here once output is flushed.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
