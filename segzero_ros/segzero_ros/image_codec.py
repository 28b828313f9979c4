"""sensor_msgs ``Image`` / ``CompressedImage`` ↔ numpy, without cv_bridge.

``image_to_numpy`` is zero-copy where the layout allows (no row padding, native byte order): the
array is a view of the message's buffer. Every malformed message raises ``ImageConversionError``
naming what is wrong.
"""

from __future__ import annotations

import array as array_module
import sys
from typing import Any

import numpy as np

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "rgb16": (np.dtype(np.uint16), 3),
    "bgr16": (np.dtype(np.uint16), 3),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "16UC1": (np.dtype(np.uint16), 1),
    "16SC1": (np.dtype(np.int16), 1),
    "32SC1": (np.dtype(np.int32), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "64FC1": (np.dtype(np.float64), 1),
    # YUV 4:2:2, two bytes a pixel: "yuv422" and "uyvy" are U Y0 V Y1; "yuv422_yuy2" and "yuyv" are Y0 U Y1 V.
    "yuv422": (np.dtype(np.uint8), 2),
    "uyvy": (np.dtype(np.uint8), 2),
    "yuv422_yuy2": (np.dtype(np.uint8), 2),
    "yuyv": (np.dtype(np.uint8), 2),
    # Raw Bayer mosaics, 8 bit, named by the colours of the top-left 2×2 cell.
    "bayer_rggb8": (np.dtype(np.uint8), 1),
    "bayer_bggr8": (np.dtype(np.uint8), 1),
    "bayer_gbrg8": (np.dtype(np.uint8), 1),
    "bayer_grbg8": (np.dtype(np.uint8), 1),
}
DEFAULT_MAX_SIZE = 8192
_LITTLE = sys.byteorder == "little"


class ImageConversionError(ValueError):
    """A message that cannot be converted; the text says what is wrong with it."""


def _layout(encoding: str) -> tuple[np.dtype, int]:
    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    return ENCODINGS[encoding]


def image_to_numpy(msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
    """H×W (one channel) or H×W×C array of the encoding's dtype; honours ``step`` padding and ``is_bigendian``."""
    dtype, channels = _layout(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageConversionError(f"empty image: {width}×{height}")
    if height > max_size or width > max_size:
        raise ImageConversionError(f"image {width}×{height} exceeds the {max_size}×{max_size} limit")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ImageConversionError(f"step {step} < width×channels×bytes = {row_bytes} for {msg.encoding}")
    data = msg.data
    if len(data) != step * height:
        raise ImageConversionError(f"data has {len(data)} bytes, expected step×height = {step * height}")
    buf = np.frombuffer(data, dtype=np.uint8)
    if step != row_bytes:
        buf = buf.reshape(height, step)[:, :row_bytes]
        if dtype.itemsize > 1:
            buf = np.ascontiguousarray(buf)
    array = buf.view(dtype.newbyteorder(">" if msg.is_bigendian else "<")).reshape(height, width, channels)
    if dtype.itemsize > 1 and bool(msg.is_bigendian) == _LITTLE:
        array = array.astype(dtype)  # to native byte order
    return array[:, :, 0] if channels == 1 else array


def numpy_to_image(array: np.ndarray, encoding: str, header: Any = None) -> Any:
    """A ``sensor_msgs/Image`` holding ``array`` (row-major, no padding, native byte order)."""
    from sensor_msgs.msg import Image

    dtype, channels = _layout(encoding)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ImageConversionError(f"{encoding} needs {channels} channel(s), got shape {array.shape}")
    if array.dtype != dtype:
        raise ImageConversionError(f"{encoding} needs dtype {dtype}, got {array.dtype}")
    # With field checks on, the message keeps the array.array it is given; without, its setter copies it
    # again (message code generated without that switch always keeps it).
    msg = Image(check_fields=True) if "_check_fields" in Image.__slots__ else Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(not _LITTLE and dtype.itemsize > 1)
    msg.step = int(array.shape[1] * channels * dtype.itemsize)
    # One copy, straight into the array.array the message keeps.
    data = array_module.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(array)).cast("B"))
    msg.data = data
    return msg


def compressed_to_numpy(msg: Any, max_size: int = DEFAULT_MAX_SIZE) -> np.ndarray:
    """Decode a ``CompressedImage`` (JPEG/PNG): H×W×3 RGB for colour, H×W for grey or 16-bit PNG."""
    import cv2

    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size == 0:
        raise ImageConversionError("compressed image has no data")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageConversionError(f"cannot decode compressed image (format {msg.format!r}, {data.size} bytes)")
    if image.shape[0] > max_size or image.shape[1] > max_size:
        raise ImageConversionError(f"image {image.shape[1]}×{image.shape[0]} exceeds the {max_size}×{max_size} limit")
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def _colour_conversions() -> dict[str, int]:
    """OpenCV's conversion to RGB of each encoding that needs one (OpenCV names Bayer patterns as ROS does)."""
    import cv2

    return {
        "bgr8": cv2.COLOR_BGR2RGB,
        "bgr16": cv2.COLOR_BGR2RGB,
        "rgba8": cv2.COLOR_RGBA2RGB,
        "bgra8": cv2.COLOR_BGRA2RGB,
        "8UC3": cv2.COLOR_BGR2RGB,
        "8UC4": cv2.COLOR_BGRA2RGB,
        "yuv422": cv2.COLOR_YUV2RGB_UYVY,
        "uyvy": cv2.COLOR_YUV2RGB_UYVY,
        "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUYV,
        "yuyv": cv2.COLOR_YUV2RGB_YUYV,
        "bayer_rggb8": cv2.COLOR_BayerRGGB2RGB,
        "bayer_bggr8": cv2.COLOR_BayerBGGR2RGB,
        "bayer_gbrg8": cv2.COLOR_BayerGBRG2RGB,
        "bayer_grbg8": cv2.COLOR_BayerGRBG2RGB,
    }


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """The H×W×3 uint8 RGB image the models take, from any colour, grey, YUV 4:2:2 or Bayer encoding."""
    import cv2

    dtype, channels = _layout(encoding)
    conversions = _colour_conversions()
    if encoding.startswith("bayer_") or channels == 2:
        if array.shape[0] % 2 or array.shape[1] % 2:
            size = f"{array.shape[1]}×{array.shape[0]}"
            raise ImageConversionError(f"{encoding} needs an even width and height, got {size}")
        return cv2.cvtColor(np.ascontiguousarray(array), conversions[encoding])
    if dtype != np.uint8:
        if dtype.kind != "u":
            raise ImageConversionError(f"{encoding} is not a camera image the models can read")
        array = (array >> (8 * (dtype.itemsize - 1))).astype(np.uint8)
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(array), cv2.COLOR_GRAY2RGB)
    if encoding in conversions:
        return cv2.cvtColor(array, conversions[encoding])
    return array  # rgb8, rgb16 (reduced above); generic 8UC3/8UC4 are taken in OpenCV's BGR order


def stamp_seconds(header: Any) -> float | None:
    """A message header's stamp in seconds (None without a header)."""
    return None if header is None else header.stamp.sec + header.stamp.nanosec * 1e-9
