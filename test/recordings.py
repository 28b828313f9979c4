"""Recordings written by the tests themselves (rosbags, no ROS): camera frames of a moving demo scene in any
encoding or as CompressedImage, and a goal topic, in sqlite3 or MCAP storage."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from segzero_ros.scenes import demo_scene

START_NS = 1_700_000_000 * 10**9  # the recordings' first frame (a fixed wall-clock time)


def frame_rgb(k: int, width: int, height: int) -> np.ndarray:
    """Frame ``k`` of the test video: the demo scene shifted right by ``k`` pixels."""
    return np.roll(demo_scene(width, height)[0], k, axis=1)


def write_recording(
    path: Path,
    storage: str = "mcap",
    frames: int = 20,
    rate_hz: float = 10.0,
    encoding: str = "rgb8",
    size: tuple[int, int] = (160, 120),
    goals: list[tuple[float, str]] = (),
    topic: str = "/camera/image",
    goal_topic: str = "/segzero/goal",
    corrupt: tuple[int, ...] = (),
) -> list[tuple[int, int]]:
    """Write a rosbag2 folder at ``path``; the (sec, nanosec) stamps of its frames. ``encoding`` "jpeg" writes
    CompressedImage; ``goals`` are (seconds after the first frame, plain text or JSON); frames listed in
    ``corrupt`` get a wrong data length (a camera's broken frame)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    Header, Time = types["std_msgs/msg/Header"], types["builtin_interfaces/msg/Time"]
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    stamps = []
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        compressed = encoding == "jpeg"
        kind = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
        images = writer.add_connection(topic, kind, typestore=store)
        strings = writer.add_connection(goal_topic, "std_msgs/msg/String", typestore=store) if goals else None
        width, height = size
        events = []
        for k in range(frames):
            t = START_NS + round(k * 1e9 / rate_hz)
            stamp = Time(sec=t // 10**9, nanosec=t % 10**9)
            stamps.append((stamp.sec, stamp.nanosec))
            header = Header(stamp=stamp, frame_id="camera_color_optical_frame")
            rgb = frame_rgb(k, width, height)
            if compressed:
                _, data = cv2.imencode(".jpg", rgb[:, :, ::-1])
                msg = types["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg", data=data.ravel())
            else:
                array, step = _encode(rgb, encoding)
                data = array.reshape(-1)
                if k in corrupt:
                    data = data[:-7]
                msg = types["sensor_msgs/msg/Image"](
                    header=header,
                    height=height,
                    width=width,
                    encoding=encoding,
                    is_bigendian=0,
                    step=step,
                    data=data,
                )
            events.append((t, images, store.serialize_cdr(msg, kind)))
        for at, text in goals:
            data = store.serialize_cdr(types["std_msgs/msg/String"](data=text), "std_msgs/msg/String")
            events.append((START_NS + round(at * 1e9), strings, data))
        for t, connection, raw in sorted(events, key=lambda e: e[0]):
            writer.write(connection, t, raw)
    return stamps


def _encode(rgb: np.ndarray, encoding: str) -> tuple[np.ndarray, int]:
    if encoding == "rgb8":
        return np.ascontiguousarray(rgb), rgb.shape[1] * 3
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1]), rgb.shape[1] * 3
    if encoding == "mono8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), rgb.shape[1]
    raise ValueError(encoding)


def json_goal(goal_id: str, text: str = "the red cup") -> str:
    return json.dumps({"id": goal_id, "text": text})
