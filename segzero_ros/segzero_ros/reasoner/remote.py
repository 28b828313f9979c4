"""The reasoner as a shared server: the same prompt and image sent to an OpenAI-compatible endpoint (vLLM).

``RemoteReasoner(config).reason(rgb, goal)`` behaves as ``Reasoner.reason``: the frame resized to
``config.image_size`` (PNG, lossless, so the server's processor sees the pixels the local path would), one
user turn (image, then the reference prompt), greedy (temperature 0), then the same parsing and scaling.
Requests time out after ``timeout_s`` and are retried ``retries`` times with exponential backoff on network
errors, 429 and 5xx. The API key is read from the environment variable named by ``api_key_env``, never from
parameters, and never logged.

The resize guard: a server whose image processor resizes the square image again answers in another frame's
coordinates (misplaced masks, silently). Where the served model's processor is here (a local folder, or cached),
each request's prompt tokens are counted as the local path counts them and compared with the server's
``usage.prompt_tokens``; a mismatch fails the goal with the cause and the fix. Without the processor the check is
off, said once in the log.
"""

from __future__ import annotations

import base64
import functools
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

from segzero_ros.hub import files_only
from segzero_ros.protocol import ANSWER_END, build_prompt
from segzero_ros.reasoner.base import ReasonerConfig, Reasoning, interpret_answer, update_config
from segzero_ros.reasoner.health import ServerHealth
from segzero_ros.reasoner.local import build_messages, resize_for_reasoner

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


@functools.lru_cache(maxsize=8)
def served_processor(model: str, revision: str | None = None, local_files_only: bool = False) -> tuple[Any, str]:
    """The served model's processor here (chat template, image processor), to count a request's prompt tokens as
    the local path does; (None, why) when it cannot be had (a hub id neither cached nor reachable)."""
    try:
        from transformers import AutoProcessor

        local = files_only(model, "preprocessor_config.json", local_files_only)
        return AutoProcessor.from_pretrained(model, revision=revision, local_files_only=local), ""
    except Exception as exc:  # the guard is an extra: the answers still come
        return None, f"{type(exc).__name__}: {exc}"


def resize_error(got: int, expected: int, size: int) -> str:
    """Why a goal failed when the server's prompt token count is not the local one, and the fix."""
    pixels = size * size
    return (
        f"the server counted {got} prompt tokens for this request where {expected} were expected: its image "
        f"processor resized the {size}x{size} image, so its coordinates would be in another frame (masks "
        f"misplaced). Serve the model with pixel bounds that keep the image whole: segzero serve --image-size {size}, "
        f'or vLLM --mm-processor-kwargs \'{{"min_pixels": {pixels}, "max_pixels": {pixels}}}\''
    )


class RemoteReasoner:
    """``reason(rgb, goal)`` through an OpenAI-compatible chat-completions endpoint (backend ``openai``); see the
    module docstring."""

    OPTIONS: tuple[str, ...] = ("endpoint", "api_model", "timeout_s", "retries", "api_key_env")
    LIVE_OPTIONS: tuple[str, ...] = ("timeout_s", "retries")

    def __init__(self, config: ReasonerConfig, options: RemoteConfig | Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.remote = options if isinstance(options, RemoteConfig) else RemoteConfig(**dict(options or {}))
        self._guard_said = False  # the log said once that the resize guard is off
        self.health = ServerHealth(self.remote.endpoint)  # the node's diagnostics read it (and start its probes)
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
        return self._body(resize_for_reasoner(rgb, self.config.image_size), goal, protocol)

    def _body(self, image: Any, goal: str, protocol: str) -> dict[str, Any]:
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

    def expected_prompt_tokens(self, image: Any, goal: str, protocol: str) -> int | None:
        """The request's prompt tokens as the local path counts them; None when the processor is not here."""
        processor, why = served_processor(self.config.model, self.config.revision, self.config.local_files_only)
        if processor is None:
            if not self._guard_said:
                self._guard_said = True
                LOG.warning(
                    "the server's image resizing is not checked: no processor of %s here (%s); set reasoner.model "
                    "to a local copy of the served model to check it",
                    self.config.model,
                    why[:200],
                )
            return None
        text = processor.apply_chat_template(
            build_messages(image, build_prompt(goal, protocol)), tokenize=False, add_generation_prompt=True
        )
        return int(processor(text=[text], images=[image], return_tensors="np")["input_ids"].shape[1])

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
                start = time.perf_counter()
                with urllib.request.urlopen(request, timeout=self.remote.timeout_s) as response:
                    reply = json.loads(response.read().decode("utf-8"))
                self.health.record(True, latency_ms=(time.perf_counter() - start) * 1e3)
                return reply
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
        self.health.record(False, last)
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
        image = resize_for_reasoner(rgb, self.config.image_size)
        body = self._body(image, goal, protocol)
        expected = self.expected_prompt_tokens(image, goal, protocol)
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
        usage = reply.get("usage") or {}
        got = int(usage.get("prompt_tokens", 0))
        if expected is not None and got and got != expected:
            error = resize_error(got, expected, self.config.image_size)
            return Reasoning(text=text, error=error, prompt_tokens=got, timings_ms={"request_ms": (t2 - t1) * 1e3})
        result = interpret_answer(text, protocol, self.config.strict, self.config.image_size, rgb.shape[1::-1])
        result.prompt_tokens = got
        result.new_tokens = int(usage.get("completion_tokens", 0))
        result.timings_ms = {
            "preprocess_ms": (t1 - t0) * 1e3,
            "request_ms": (t2 - t1) * 1e3,
            "parse_ms": (time.perf_counter() - t2) * 1e3,
        }
        return result

    def close(self) -> None:
        """The health probes stop; nothing else to release: the model lives on the server."""
        self.health.stop()
