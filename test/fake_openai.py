"""A local OpenAI-compatible chat-completions server for tests: records requests, answers from a script."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A reasoner's answer in the protocol format, as a served model would write it (the fake's default reply in tests).
ANSWER = (
    '<think>The mug with a handle.</think><answer>{"bbox": [100,200,300,400], "points_1": [150,250], '
    '"points_2": [200,300]}'
)


class FakeOpenAI:
    """Serves ``POST /v1/chat/completions`` (and ``GET /v1/models``) on 127.0.0.1 (``port``, 0: a free one);
    ``answers`` is a list consumed in order, each one a text (200 with that content), an int (that HTTP status), or
    ``("slow", seconds, text)``."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[Any] = []
        self.default: Any = 500
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
                self.send_response(200 if self.path.rstrip("/").endswith("/models") else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    answer = fake.answers.pop(0) if fake.answers else fake.default
                if isinstance(answer, tuple):
                    _, seconds, answer = answer
                    time.sleep(seconds)
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.end_headers()
                    self.wfile.write(b"server error")
                    return
                reply = {
                    "choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 923, "completion_tokens": 42},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *answers: Any) -> None:
        with self.lock:
            self.answers = list(answers)
            self.requests.clear()
            self.headers.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
