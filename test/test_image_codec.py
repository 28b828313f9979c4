"""Image conversion without cv_bridge: every encoding, padding, byte order, and each rejection."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image

from segzero_ros.image_codec import (
    ENCODINGS,
    ImageConversionError,
    compressed_to_numpy,
    image_to_numpy,
    numpy_to_image,
    to_rgb8,
)


def _sample(encoding: str, h: int = 5, w: int = 7) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(0)
    if dtype.kind == "f":
        data = rng.normal(size=(h, w, channels)).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, (h, w, channels), dtype=dtype, endpoint=True)
    return data[:, :, 0] if channels == 1 else data


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_round_trip_every_encoding(encoding):
    array = _sample(encoding)
    msg = numpy_to_image(array, encoding)
    assert msg.step == array.shape[1] * ENCODINGS[encoding][1] * array.dtype.itemsize
    back = image_to_numpy(msg)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_header_is_copied():
    from std_msgs.msg import Header

    header = Header(frame_id="cam")
    header.stamp.sec = 5
    msg = numpy_to_image(np.zeros((2, 3), np.uint8), "mono8", header)
    assert msg.header.frame_id == "cam" and msg.header.stamp.sec == 5


def test_unpadded_uint8_is_a_view_of_the_message_buffer():
    msg = numpy_to_image(_sample("rgb8"), "rgb8")
    array = image_to_numpy(msg)
    assert not array.flags.owndata  # a view, no copy


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "32FC1"])
def test_row_padding_is_skipped(encoding):
    array = _sample(encoding)
    h, w = array.shape[:2]
    row = array.reshape(h, -1).view(np.uint8)
    padded = np.zeros((h, row.shape[1] + 13), np.uint8)
    padded[:, : row.shape[1]] = row
    msg = Image(height=h, width=w, encoding=encoding, step=padded.shape[1], is_bigendian=0)
    msg.data = padded.tobytes()
    assert np.array_equal(image_to_numpy(msg), array)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian_data(encoding):
    array = _sample(encoding)
    big = array.astype(array.dtype.newbyteorder(">"))
    msg = Image(
        height=array.shape[0],
        width=array.shape[1],
        encoding=encoding,
        is_bigendian=1,
        step=array.shape[1] * array.dtype.itemsize,
    )
    msg.data = big.tobytes()
    out = image_to_numpy(msg)
    assert np.array_equal(out, array) and out.dtype.isnative


def _msg(**fields):
    base = {"height": 4, "width": 4, "encoding": "rgb8", "step": 12, "is_bigendian": 0}
    base.update({k: v for k, v in fields.items() if k != "data"})
    msg = Image(**base)
    msg.data = fields.get("data", bytes(base["step"] * base["height"]))
    return msg


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (_msg(encoding="nv21"), "unsupported encoding 'nv21'"),
        (_msg(data=bytes(47)), "data has 47 bytes, expected step×height = 48"),
        (_msg(step=8, data=bytes(32)), "step 8 < width×channels×bytes = 12"),
        (_msg(height=0, data=b""), "empty image"),
        (_msg(width=9000, step=27000, data=bytes(108000)), "exceeds the 8192×8192 limit"),
    ],
)
def test_rejections_name_the_problem(msg, reason):
    with pytest.raises(ImageConversionError, match=reason.replace("(", r"\(")):
        image_to_numpy(msg)


def test_max_size_is_configurable():
    with pytest.raises(ImageConversionError, match="exceeds the 2×2 limit"):
        image_to_numpy(_msg(), max_size=2)


def test_numpy_to_image_checks_shape_and_dtype():
    with pytest.raises(ImageConversionError, match="3 channel"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match="dtype uint16"):
        numpy_to_image(np.zeros((2, 2), np.uint8), "mono16")


def test_to_rgb8_colour_orders():
    rgb = _sample("rgb8")
    assert np.array_equal(to_rgb8(rgb[:, :, ::-1].copy(), "bgr8"), rgb)
    assert np.array_equal(to_rgb8(np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]), "rgba8"), rgb)
    assert np.array_equal(to_rgb8(np.dstack([rgb[:, :, ::-1], np.zeros(rgb.shape[:2], np.uint8)]), "bgra8"), rgb)
    grey = to_rgb8(np.full((2, 2), 200, np.uint16) * 256, "mono16")
    assert grey.shape == (2, 2, 3) and (grey == 200).all()
    with pytest.raises(ImageConversionError, match="not a camera image"):
        to_rgb8(np.zeros((2, 2), np.float32), "32FC1")


def test_compressed_jpeg_and_png():
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:, :12] = (255, 0, 0)
    _, png = cv2.imencode(".png", rgb[:, :, ::-1])
    out = compressed_to_numpy(CompressedImage(format="png", data=png.tobytes()))
    assert np.array_equal(out, rgb)
    _ok, jpeg = cv2.imencode(".jpg", rgb[:, :, ::-1])
    out = compressed_to_numpy(CompressedImage(format="rgb8; jpeg compressed bgr8", data=jpeg.tobytes()))
    assert out.shape == (16, 24, 3) and out[8, 2, 0] > 200 and out[8, 2, 2] < 60
    with pytest.raises(ImageConversionError, match="cannot decode"):
        compressed_to_numpy(CompressedImage(format="jpeg", data=b"garbage"))
    with pytest.raises(ImageConversionError, match="no data"):
        compressed_to_numpy(CompressedImage(format="jpeg", data=b""))


def test_numpy_to_image_owns_one_copy_that_views_can_write():
    """The message holds its own copy (the source may change); ``image_to_numpy`` gives a writable view of it."""
    rgb = _sample("rgb8", 6, 8)
    msg = numpy_to_image(rgb, "rgb8")
    rgb[:] = 0  # the camera buffer is reused: the message must not change with it
    view = image_to_numpy(msg)
    assert view.flags.writeable and view.any()
    view[0, 0] = (1, 2, 3)  # drawing into the view is drawing into the message
    assert bytes(msg.data[:3]) == b"\x01\x02\x03"
    strided = np.arange(2 * 10 * 3, dtype=np.uint8).reshape(2, 10, 3)[:, ::2]  # not contiguous
    assert np.array_equal(image_to_numpy(numpy_to_image(strided, "rgb8")), strided)


def test_mask_messages_threshold_the_labels_in_their_own_buffers():
    from segzero_ros.ros.messages import mask_messages

    labels = np.zeros((4, 6), np.uint8)
    labels[1, 1:3], labels[2, 4] = 1, 2
    header = Image().header
    header.frame_id = "camera"
    mask, label_image = mask_messages(labels, header, "mono8")
    assert np.array_equal(image_to_numpy(label_image), labels)
    assert np.array_equal(image_to_numpy(mask), np.where(labels > 0, 255, 0))
    assert mask.encoding == label_image.encoding == "mono8" and mask.header.frame_id == "camera"
    assert labels.max() == 2  # the label image the caller passed is left alone


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """A Bayer mosaic of ``rgb`` whose top-left 2×2 cell has the colours ``pattern`` (e.g. "RGGB")."""
    out = np.zeros(rgb.shape[:2], np.uint8)
    for k, colour in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, "RGB".index(colour)]
    return out


@pytest.mark.parametrize("pattern", ["RGGB", "BGGR", "GBRG", "GRBG"])
def test_bayer_frames_give_the_scene_colours(pattern):
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 90, 30  # a flat orange: demosaicing must give it back
    encoding = f"bayer_{pattern.lower()}8"
    msg = numpy_to_image(_mosaic(rgb, pattern), encoding)
    out = to_rgb8(image_to_numpy(msg), encoding)
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb)[2:-2, 2:-2].max() <= 1
    opencv = getattr(cv2, f"COLOR_Bayer{pattern}2RGB")  # OpenCV's own conversion of the same pattern
    assert np.array_equal(out, cv2.cvtColor(_mosaic(rgb, pattern), opencv))


@pytest.mark.parametrize(
    ("encoding", "layout"), [("yuv422", "UYVY"), ("uyvy", "UYVY"), ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")]
)
def test_yuv422_frames_give_the_scene_colours(encoding, layout):
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)  # full-resolution Y, U, V
    packed = np.zeros((12, 20, 2), np.uint8)
    u = yuv[:, 0::2, 1] // 2 + yuv[:, 1::2, 1] // 2  # 4:2:2: U and V shared by each pixel pair
    v = yuv[:, 0::2, 2] // 2 + yuv[:, 1::2, 2] // 2
    y_at, c_at = (1, 0) if layout == "UYVY" else (0, 1)
    packed[:, :, y_at] = yuv[:, :, 0]
    packed[:, 0::2, c_at], packed[:, 1::2, c_at] = u, v
    out = to_rgb8(image_to_numpy(numpy_to_image(packed, encoding)), encoding)
    assert np.array_equal(out, cv2.cvtColor(packed, getattr(cv2, f"COLOR_YUV2RGB_{layout}")))
    # Luma survives exactly up to the conversion's rounding; the colour to within the chroma subsampling.
    grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(int)
    assert np.abs(grey - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(int)).mean() < 8


def test_yuv_and_bayer_need_even_sizes_and_unknown_encodings_name_the_supported_ones():
    with pytest.raises(ImageConversionError, match="even width and height"):
        to_rgb8(np.zeros((5, 6, 2), np.uint8), "yuyv")
    msg = numpy_to_image(np.zeros((4, 4), np.uint8), "mono8")
    msg.encoding = "bayer_rggb16"
    with pytest.raises(ImageConversionError, match=r"unsupported encoding 'bayer_rggb16'; supported: .*yuyv.*bayer_"):
        image_to_numpy(msg)
