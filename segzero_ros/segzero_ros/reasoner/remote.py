"""The reasoner as a shared server: the same prompt and image sent to an OpenAI-compatible endpoint (vLLM).

``RemoteReasoner(config).reason(rgb, goal)`` behaves as ``Reasoner.reason``: the frame resized to
``config.image_size`` (PNG, lossless, so the server's processor sees the pixels the local path would), one
user turn (image, then the reference prompt), greedy (temperature 0), then the same parsing and scaling.
Requests time out after ``timeout_s`` and are retried ``retries`` times with exponential backoff on network
errors, 429 and 5xx. The API key is read from the environment variable named by ``api_key_env``, never from
parameters, and never logged.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from segzero_ros.protocol import ANSWER_END, build_prompt
from segzero_ros.reasoner.base import ReasonerConfig, Reasoning, interpret_answer, update_config
from segzero_ros.reasoner.local import resize_for_reasoner

LOG = logging.getLogger(__name__)


@dataclass
class RemoteConfig:
    """Where and how to reach the server; the answer protocol and image size come from ``ReasonerConfig``."""

    endpoint: str = "http://localhost:8000/v1"
    api_model: str = ""  # the served model's name ("" = ReasonerConfig.model)
    timeout_s: float = 60.0
    retries: int = 2
    backoff_s: float = 0.5
    api_key_env: str = ""  # name of the environment variable holding the API key ("" = none)


def _stopped_at_answer(choice: dict[str, Any], text: str) -> bool:
    """Did generation end on the ``</answer>`` stop string? vLLM says so in ``stop_reason``; a server that does
    not report it is taken to have when it stopped (``finish_reason`` "stop") inside an open answer."""
    if "stop_reason" in choice:
        return choice["stop_reason"] == ANSWER_END
    return choice.get("finish_reason") == "stop" and "<answer>" in text and ANSWER_END not in text


class RemoteError(RuntimeError):
    """The server could not give an answer (after retries)."""


class RemoteReasoner:
    """``reason(rgb, goal)`` through an OpenAI-compatible chat-completions endpoint (backend ``openai``); see the
    module docstring."""

    OPTIONS: tuple[str, ...] = ("endpoint", "api_model", "timeout_s", "retries", "api_key_env")
    LIVE_OPTIONS: tuple[str, ...] = ("timeout_s", "retries")

    def __init__(self, config: ReasonerConfig, options: RemoteConfig | Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.remote = options if isinstance(options, RemoteConfig) else RemoteConfig(**dict(options or {}))
        LOG.info("reasoner: %s", self.description)

    @property
    def description(self) -> str:
        return f"{self.remote.api_model or self.config.model} at {self.remote.endpoint}"

    def update(self, settings: Mapping[str, Any]) -> None:
        """Live settings: the answer protocol and parsing, and the request timeout and retries."""
        for name, value in update_config(self.config, settings).items():
            if name in self.LIVE_OPTIONS:  # other settings do not apply to this backend
                setattr(self.remote, name, value)

    def request_body(self, rgb: np.ndarray, goal: str, protocol: str) -> dict[str, Any]:
        """The chat-completions request for ``goal`` on ``rgb``."""
        image = resize_for_reasoner(rgb, self.config.image_size)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
        content = [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": build_prompt(goal, protocol)},
        ]
        body: dict[str, Any] = {
            "model": self.remote.api_model or self.config.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": self.config.max_new_tokens,
        }
        if self.config.stop_at_answer:
            body["stop"] = [ANSWER_END]
        return body

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.remote.api_key_env, "") if self.remote.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = self.remote.endpoint.rstrip("/") + "/chat/completions"
        last = ""
        for attempt in range(self.remote.retries + 1):
            if attempt:
                time.sleep(self.remote.backoff_s * 2 ** (attempt - 1))
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.remote.timeout_s) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} from {url}"
                if exc.code != 429 and exc.code < 500:
                    break  # the request itself is wrong: retrying will not help
            except (TimeoutError, urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{url}: {'timed out' if isinstance(reason, TimeoutError) else reason}"
            except ValueError as exc:
                last = f"{url}: not JSON ({exc})"
            LOG.warning("reasoner request failed (attempt %d of %d): %s", attempt + 1, self.remote.retries + 1, last)
        raise RemoteError(f"reasoner server failed after {self.remote.retries + 1} attempt(s): {last}")

    def reason(
        self,
        rgb: np.ndarray,
        goal: str,
        protocol: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Reasoning:
        """As ``Reasoner.reason``; ``on_text`` gets the whole answer once it arrives (no token streaming)."""
        protocol = protocol or self.config.protocol
        t0 = time.perf_counter()
        body = self.request_body(rgb, goal, protocol)
        t1 = time.perf_counter()
        try:
            reply = self._post(body)
        except RemoteError as exc:
            return Reasoning(text="", error=str(exc), timings_ms={"preprocess_ms": (t1 - t0) * 1e3})
        t2 = time.perf_counter()
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            return Reasoning(text="", error=f"reasoner server gave no answer: {str(reply)[:200]}")
        if self.config.stop_at_answer and _stopped_at_answer(choice, text):
            text += ANSWER_END  # servers leave the stop string out of the text
        if on_text is not None:
            on_text(text)
        result = interpret_answer(text, protocol, self.config.strict, self.config.image_size, rgb.shape[1::-1])
        usage = reply.get("usage") or {}
        result.prompt_tokens = int(usage.get("prompt_tokens", 0))
        result.new_tokens = int(usage.get("completion_tokens", 0))
        result.timings_ms = {
            "preprocess_ms": (t1 - t0) * 1e3,
            "request_ms": (t2 - t1) * 1e3,
            "parse_ms": (time.perf_counter() - t2) * 1e3,
        }
        return result

    def close(self) -> None:
        """Nothing to release: the model lives on the server."""
