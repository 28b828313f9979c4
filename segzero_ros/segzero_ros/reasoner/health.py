"""Is the reasoner's server answering? What the node's diagnostics say of an ``openai`` backend (no ROS here).

Every request tells it (``record``); while a node runs, a thread also asks the server (``GET /models``) every
``period_s``, so a server that went down is seen before the next goal fails, and one that came back is seen too.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

PROBE_PERIOD_S = 5.0
PROBE_TIMEOUT_S = 2.0


class ServerHealth:
    """Reachability of ``endpoint`` and the latency of the last request; thread-safe."""

    def __init__(self, endpoint: str, period_s: float = PROBE_PERIOD_S, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.endpoint = endpoint
        self.period_s, self.timeout_s = period_s, timeout_s
        self._lock = threading.Lock()
        self._reachable: bool | None = None  # None: not known yet
        self._error = ""
        self._last_request_ms: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, ok: bool, error: str = "", latency_ms: float | None = None) -> None:
        """What a request (or a probe) found."""
        with self._lock:
            self._reachable, self._error = ok, "" if ok else error
            if latency_ms is not None:
                self._last_request_ms = latency_ms

    def probe(self) -> None:
        """Ask the server once (``GET /models``)."""
        why = models_unanswered(self.endpoint, self.timeout_s)
        self.record(not why, why)

    def start(self) -> None:
        """Probe every ``period_s`` in a thread until ``stop``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="segzero-server-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.probe()
            self._stop.wait(self.period_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 1.0)
            self._thread = None

    def values(self) -> dict[str, Any]:
        """For diagnostics: the endpoint, reachable yes/no/unknown, the last error, the last request's latency."""
        with self._lock:
            reachable = {None: "unknown", True: "yes", False: "no"}[self._reachable]
            last = "" if self._last_request_ms is None else f"{self._last_request_ms:.1f}"
            return {
                "reasoner_endpoint": self.endpoint,
                "reasoner_reachable": reachable,
                "reasoner_error": self._error,
                "reasoner_last_request_ms": last,
            }

    def warning(self) -> str:
        """Why the server is not usable now; '' while it answers (or is not known yet)."""
        with self._lock:
            return (
                f"reasoner server at {self.endpoint} not answering ({self._error})" if self._reachable is False else ""
            )


def models_unanswered(endpoint: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """Why ``GET /models`` of an OpenAI-compatible ``endpoint`` gave no answer; '' when it did (200)."""
    url = endpoint.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return "" if response.status == 200 else f"HTTP {response.status} from {url}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {url}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"
