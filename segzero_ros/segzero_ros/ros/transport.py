"""DDS transport settings a node process applies to itself before ``rclpy.init``."""

from __future__ import annotations

from collections.abc import MutableMapping


def apply_defaults(environ: MutableMapping[str, str]) -> None:
    """Nothing is forced yet: Fast DDS publishes synchronously (its default). Its asynchronous mode halved
    ``publish()`` of a 2.7 MB overlay but lost action goals in bursts (a status sample in flight cannot be
    replaced), so it is the user's choice (``RMW_FASTRTPS_PUBLICATION_MODE=ASYNCHRONOUS``), not a default."""
