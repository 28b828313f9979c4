"""Recordings in and out, without a ROS install: rosbag2 folders (sqlite3 or MCAP storage) and single ``.mcap``
files read with ``rosbags``; outputs written as a rosbag2 folder with MCAP storage (``ros2 bag play``, Foxglove).

Messages going out are the node's own ``rclpy`` messages, serialized by ``rclpy`` (CDR) and described by
``rosbags``' type store (the ``ros2msg`` schemas in the MCAP file), ``segzero_interfaces`` included.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
GOAL_TYPE = "std_msgs/msg/String"


class BagError(RuntimeError):
    """A recording that cannot be used; the message (one line) names the file and the reason."""


def typestore():
    """ROS 2 kilted's message types plus ``segzero_interfaces`` and ``vision_msgs`` (from their ``.msg`` files;
    vision_msgs where it is installed)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for package, required in (("segzero_interfaces", True), ("vision_msgs", False)):
        folder = interface_folder(package, required)
        for path in sorted(folder.glob("msg/*.msg")) if folder is not None else ():
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
    store.register(types)
    return store


def interface_folder(package: str = "segzero_interfaces", required: bool = True) -> Path | None:
    """Where a message package's ``.msg`` files are: its share folder, else (ours) this source tree's; None when
    an optional one is not installed."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(package)))
    except (ImportError, LookupError, OSError):
        pass
    candidates.append(Path(sys.prefix) / "share" / package)  # the venv (make venv builds or installs it there)
    candidates.append(Path(__file__).resolve().parents[3] / package)  # this source tree
    for folder in candidates:
        if any((folder / "msg").glob("*.msg")):
            return folder
    if required:
        raise BagError(f"the {package} message files were not found (make venv or colcon build installs them)")
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


class BagInput:
    """A recording opened for reading; see the module docstring."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.highlevel import AnyReader

        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"{self.path}: no such file or folder")
        if self.path.is_file() and self.path.suffix != ".mcap":
            raise BagError(f"{self.path}: not a recording (a rosbag2 folder or a .mcap file)")
        try:
            self.reader = AnyReader([self.path], default_typestore=typestore())
            self.reader.open()
        except Exception as exc:
            raise BagError(f"{self.path}: cannot read it ({type(exc).__name__}: {_one_line(exc)})") from exc
        self.topics = {c.topic: c.msgtype for c in self.reader.connections}
        self.counts = {c.topic: c.msgcount for c in self.reader.connections}

    def image_topic(self, requested: str | None = None) -> str:
        """The image topic to replay: ``requested``, or the recording's only image topic."""
        if requested:
            if requested not in self.topics:
                raise BagError(f"{self.path}: no topic {requested!r} (topics: {', '.join(sorted(self.topics))})")
            if self.topics[requested] not in IMAGE_TYPES:
                raise BagError(
                    f"{self.path}: {requested} is {self.topics[requested]}, not an image ({' or '.join(IMAGE_TYPES)})"
                )
            return requested
        images = sorted(t for t, kind in self.topics.items() if kind in IMAGE_TYPES)
        if not images:
            raise BagError(f"{self.path}: no image topic (topics: {', '.join(sorted(self.topics)) or 'none'})")
        if len(images) > 1:
            raise BagError(f"{self.path}: several image topics ({', '.join(images)}): choose one with --image-topic")
        if not self.counts.get(images[0]):
            raise BagError(f"{self.path}: the image topic {images[0]} has no frames")
        return images[0]

    def goal_topic(self, requested: str | None = None) -> str | None:
        """The recorded goal topic: ``requested``, else a ``String`` topic named ``goal`` (any namespace)."""
        if requested:
            if self.topics.get(requested) != GOAL_TYPE:
                raise BagError(f"{self.path}: no {GOAL_TYPE} topic {requested!r}")
            return requested
        goals = sorted(t for t, kind in self.topics.items() if kind == GOAL_TYPE and t.rsplit("/", 1)[-1] == "goal")
        return goals[0] if len(goals) == 1 else None

    @property
    def start_ns(self) -> int:
        """When the recording starts (its first message), ns."""
        return self.reader.start_time

    def messages(self, topics: list[str]) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, message type, recorded time in ns, raw CDR) of ``topics``, in time order."""
        connections = [c for c in self.reader.connections if c.topic in topics]
        try:
            for connection, timestamp, raw in self.reader.messages(connections=connections):
                yield connection.topic, connection.msgtype, timestamp, bytes(raw)
        except Exception as exc:
            raise BagError(f"{self.path}: cannot read it ({type(exc).__name__}: {_one_line(exc)})") from exc

    def decode(self, raw: bytes, msgtype: str) -> Any:
        """A message from its raw CDR (raises on a corrupt one)."""
        return self.reader.deserialize(raw, msgtype)

    def close(self) -> None:
        self.reader.close()


def msgtype_of(msg: Any) -> str:
    """``sensor_msgs/msg/Image`` for an rclpy ``sensor_msgs.msg.Image``."""
    return f"{type(msg).__module__.split('.')[0]}/msg/{type(msg).__name__}"


class BagOutput:
    """The replay's messages, written as a rosbag2 folder with MCAP storage."""

    def __init__(self, folder: str | Path) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        self.folder = Path(folder)
        self._store = typestore()
        self._writer = Writer(self.folder, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[tuple[str, str], Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def write(self, topic: str, msg: Any, t_ns: int) -> None:
        """An rclpy message on ``topic`` at recorded time ``t_ns``."""
        from rclpy.serialization import serialize_message

        self.write_raw(topic, msgtype_of(msg), serialize_message(msg), t_ns)

    def write_raw(self, topic: str, msgtype: str, raw: bytes, t_ns: int) -> None:
        """Raw CDR of ``msgtype`` on ``topic`` at recorded time ``t_ns``."""
        key = (topic, msgtype)
        if key not in self._connections:
            self._connections[key] = self._writer.add_connection(topic, msgtype, typestore=self._store)
        self._writer.write(self._connections[key], t_ns, raw)
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> Path:
        """Finish the file (its summary and rosbag2 metadata); the MCAP file's path."""
        self.closed = True
        self._writer.close()
        return next(self.folder.glob("*.mcap"))
