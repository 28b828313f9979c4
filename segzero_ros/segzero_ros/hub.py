"""Hugging Face hub access decided before a load: a cached model loads offline with no network wait; a model that is
neither cached nor reachable fails at once, naming the model and the ways out (instead of minutes of retries)."""

from __future__ import annotations

import os
import re
import socket
import threading
from urllib.parse import urlparse

DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0


class HubUnreachable(OSError):
    """A model is not in the local cache and the hub cannot be reached."""


def is_repo_id(name: str) -> bool:
    """``name`` has the form of a hub id (``org/name``), not of a path."""
    return re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not name.startswith(".")


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def is_cached(repo_id: str, filename: str | None = None, repo_type: str = "model") -> bool:
    """``repo_id`` (its ``filename``, when given) is in the local Hugging Face cache (HF_HOME / HF_HUB_CACHE)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if filename is not None:
        return isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str)
    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshots = os.path.join(constants.HF_HUB_CACHE, folder, "snapshots")
    return os.path.isdir(snapshots) and bool(os.listdir(snapshots))


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def unreachable_reason(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """Why the hub at ``url`` cannot be reached (a TCP connection within ``timeout_s``, name lookup included); ''
    when it can."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[str] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append("")
        except OSError as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=connect, daemon=True)  # a name lookup ignores the socket's timeout
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else f"no answer within {timeout_s:g} s"


def local_only(
    repo_id: str, filename: str | None = None, local_files_only: bool = False, repo_type: str = "model"
) -> bool:
    """Whether to load ``repo_id`` from the cache alone: when it is cached (then no network wait), or when told to;
    raises ``HubUnreachable`` when it is not cached and the hub is off or cannot be reached."""
    if is_cached(repo_id, filename, repo_type):
        return True
    if local_files_only or offline_mode():
        why = "reasoner.local_files_only / --local-files-only" if local_files_only else "HF_HUB_OFFLINE"
        raise HubUnreachable(f"{repo_id} is not in the Hugging Face cache and hub access is off ({why})")
    reason = unreachable_reason(endpoint())
    if reason:
        raise HubUnreachable(
            f"{repo_id} is not in the Hugging Face cache and the hub ({endpoint()}) cannot be reached: {reason}"
        )
    return False


def files_only(model: str, filename: str | None = None, local_files_only: bool = False) -> bool:
    """``local_files_only`` for ``from_pretrained(model)``: True for a folder here, else ``local_only`` of the hub
    id (raises ``HubUnreachable`` as it does)."""
    if not is_repo_id(model) or os.path.exists(os.path.expanduser(model)):
        return True
    return local_only(model, filename, local_files_only)
