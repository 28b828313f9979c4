"""The TensorRT backend: its pure parts, and its TensorRT calls against a fake ``tensorrt`` module.

No machine here has TensorRT (see README, "What has not run on real TensorRT"): ``fake_tensorrt`` stands in
for the module, running the ONNX graphs with ONNX Runtime, so these tests check the backend's control flow,
cache and buffer handling, not TensorRT itself. ``test_real_tensorrt_*`` runs only where TensorRT and a CUDA
GPU are present.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys

import fake_tensorrt
import numpy as np
import pytest
import torch

from segzero_ros.cli import main
from segzero_ros.protocol import Target
from segzero_ros.scenes import demo_scene
from segzero_ros.segmenter import make_segmenter
from segzero_ros.segmenter import tensorrt as trt_backend
from segzero_ros.segmenter.base import BackendUnavailable, resolve_backend
from segzero_ros.segmenter.tensorrt import (
    ENGINE_INFO_FILE,
    EngineBuildError,
    EngineSpec,
    StaleEngineError,
    TensorRTSegmenter,
    decoder_profile,
    read_engine_spec,
)

TARGETS = [
    Target(bbox=(100, 150, 260, 330), points=[]),
    Target(bbox=(100, 150, 260, 330), points=[(150, 240)]),
    Target(bbox=(380, 170, 520, 320), points=[(450, 250), (420, 200), (480, 300)]),
]
SPEC = EngineSpec("NVIDIA H100", "9.0", "10.3.0", "ab" * 32, True, 4.0, 34)


@pytest.fixture
def fake_trt(monkeypatch, tmp_path):
    """``import tensorrt`` gives the fake; the "GPU" is the CPU; engines go to a fresh cache."""
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    monkeypatch.setattr(fake_tensorrt, "__version__", "10.3.0")
    monkeypatch.setattr(fake_tensorrt, "BUILDS", [])
    monkeypatch.setattr(trt_backend, "gpu_identity", lambda device: ("Fake GPU", "8.9"))
    monkeypatch.setenv("SEGZERO_CACHE", str(tmp_path / "cache"))
    return fake_tensorrt


@pytest.fixture
def trt_config(tiny_sam2_config, tiny_sam2_export):
    return dataclasses.replace(tiny_sam2_config, backend="tensorrt", model=str(tiny_sam2_export), device="cpu")


# --- pure parts --------------------------------------------------------------------------------


def test_engine_key_changes_with_every_field_it_depends_on():
    variants = [
        SPEC,
        dataclasses.replace(SPEC, gpu_name="NVIDIA L4"),
        dataclasses.replace(SPEC, compute_capability="8.9"),
        dataclasses.replace(SPEC, tensorrt_version="10.4.0"),
        dataclasses.replace(SPEC, onnx_sha256="cd" * 32),
        dataclasses.replace(SPEC, fp16=False),
        dataclasses.replace(SPEC, workspace_gb=8.0),
        dataclasses.replace(SPEC, max_points=10),
        dataclasses.replace(SPEC, format_version=2),
    ]
    assert len({v.key() for v in variants}) == len(variants)
    assert SPEC.key() == dataclasses.replace(SPEC).key()
    other = dataclasses.replace(SPEC, tensorrt_version="8.6.1")
    assert SPEC.mismatch(other) == ["tensorrt_version: '8.6.1' != '10.3.0'"]


def test_decoder_profile_spans_box_only_to_max_points():
    profile = decoder_profile(34)
    assert profile["point_coords"] == ((1, 2, 2), (1, 4, 2), (1, 34, 2))
    assert profile["point_labels"] == ((1, 2), (1, 4), (1, 34))
    assert decoder_profile(3)["point_labels"][1] == (1, 3)
    with pytest.raises(ValueError, match=r"box's corners"):
        decoder_profile(1)


def test_auto_picks_the_fastest_available_backend():
    def avail(cuda, tensorrt, onnxruntime=True):
        return {"cuda": cuda, "tensorrt": tensorrt, "onnxruntime": onnxruntime}

    assert resolve_backend("auto", avail(True, True)) == "tensorrt"
    assert resolve_backend("auto", avail(True, False)) == "torch_compiled"
    assert resolve_backend("auto", avail(False, True)) == "onnx"
    assert resolve_backend("auto", avail(False, False, onnxruntime=False)) == "torch"
    assert resolve_backend("onnx", avail(True, True)) == "onnx"


def test_without_tensorrt_the_error_names_the_fallback(trt_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails as on a machine without it
    with pytest.raises(BackendUnavailable, match=r"tensorrt.*'onnx'.*'torch'"):
        make_segmenter(trt_config)


def test_without_a_gpu_the_error_names_the_fallback(trt_config, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    with pytest.raises(BackendUnavailable, match=r"CUDA GPU.*'onnx'"):
        make_segmenter(trt_config)  # device cpu: no GPU whatever the machine


def test_too_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt)
    monkeypatch.setattr(fake_tensorrt, "__version__", "8.5.3")
    with pytest.raises(BackendUnavailable, match=r"8\.5\.3 is too old"):
        trt_backend.tensorrt_module()


# --- TensorRT calls, against the fake module --------------------------------------------------


def test_engines_are_built_fp16_with_a_point_profile_and_masks_match_onnx(fake_trt, trt_config):
    seg = make_segmenter(trt_config)
    assert isinstance(seg, TensorRTSegmenter)
    assert [b["fp16"] for b in fake_trt.BUILDS] == [True, True]
    assert fake_trt.BUILDS[0]["workspace"] == 4 << 30 and fake_trt.BUILDS[0]["profile"] == {}
    assert fake_trt.BUILDS[1]["profile"]["point_coords"] == [[1, 2, 2], [1, 4, 2], [1, 34, 2]]
    spec = read_engine_spec(seg.folder)
    assert (spec.gpu_name, spec.compute_capability, spec.tensorrt_version) == ("Fake GPU", "8.9", "10.3.0")

    onnx_seg = make_segmenter(dataclasses.replace(trt_config, backend="onnx"))
    for seed in (5, 6):
        rgb, _ = demo_scene(640, 480, seed=seed)
        before = {name: buf.data_ptr() for name, buf in seg.decoder.buffers.items()}
        ours, expected = seg.segment(rgb, TARGETS), onnx_seg.segment(rgb, TARGETS)
        for a, b in zip(ours, expected, strict=True):
            assert np.array_equal(a.mask, b.mask) and a.score == pytest.approx(b.score, abs=1e-6)
        if seed == 6:  # input buffers were bound once and reused, whatever the point count
            after = {name: seg.decoder.buffers[name].data_ptr() for name in before}
            assert after == before


def test_engines_are_cached_and_rebuilt_for_another_tensorrt(fake_trt, trt_config, monkeypatch):
    first = make_segmenter(trt_config).folder
    assert len(fake_trt.BUILDS) == 2
    assert make_segmenter(trt_config).folder == first and len(fake_trt.BUILDS) == 2  # cache hit
    monkeypatch.setattr(fake_trt, "__version__", "10.4.0")
    second = make_segmenter(trt_config).folder
    assert second != first and len(fake_trt.BUILDS) == 4
    assert read_engine_spec(second).tensorrt_version == "10.4.0"


def test_corrupt_cached_record_is_rebuilt(fake_trt, trt_config):
    folder = make_segmenter(trt_config).folder
    record = json.loads((folder / ENGINE_INFO_FILE).read_text())
    record["spec"]["onnx_sha256"] = "0" * 64
    (folder / ENGINE_INFO_FILE).write_text(json.dumps(record))
    assert make_segmenter(trt_config).folder == folder
    assert len(fake_trt.BUILDS) == 4 and read_engine_spec(folder).onnx_sha256 != "0" * 64


def test_fp32_precision_builds_without_fp16(fake_trt, trt_config):
    make_segmenter(dataclasses.replace(trt_config, precision="fp32"))
    assert [b["fp16"] for b in fake_trt.BUILDS] == [False, False]


def test_build_engine_cli_and_stale_engine_folders(fake_trt, trt_config, tiny_sam2_export, tmp_path, capsys):
    out = tmp_path / "engines"
    assert main(["-q", "build-engine", "--onnx", str(tiny_sam2_export), "--out", str(out), "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["fp16"] and printed["tensorrt_version"] == "10.3.0"
    engine_config = dataclasses.replace(trt_config, model=str(out))
    assert make_segmenter(engine_config).folder == out and len(fake_trt.BUILDS) == 2

    # Built for another TensorRT: never loaded; rebuilt from the recorded export while it exists.
    fake_trt.__version__ = "10.4.0"
    rebuilt = make_segmenter(engine_config).folder
    assert rebuilt != out and read_engine_spec(rebuilt).tensorrt_version == "10.4.0"
    record = json.loads((out / ENGINE_INFO_FILE).read_text())
    record["onnx_dir"] = str(tmp_path / "gone")
    (out / ENGINE_INFO_FILE).write_text(json.dumps(record))
    with pytest.raises(StaleEngineError, match=r"tensorrt_version: '10.3.0' != '10.4.0'.*build-engine"):
        make_segmenter(engine_config)


def test_engine_that_does_not_deserialise_is_a_clear_error(fake_trt, trt_config, tmp_path):
    out = tmp_path / "engines"
    main(["-q", "build-engine", "--onnx", trt_config.model, "--out", str(out), "--device", "cpu"])
    (out / "decoder.engine").write_bytes(b"garbage")
    with pytest.raises(StaleEngineError, match=r"decoder engine"):
        make_segmenter(dataclasses.replace(trt_config, model=str(out)))


def test_unparsable_onnx_is_a_build_error_with_the_parser_message(fake_trt, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a graph")
    with pytest.raises(EngineBuildError, match=r"cannot parse.*not an ONNX model"):
        trt_backend.build_engine(fake_trt, bad, tmp_path / "bad.engine")
    assert not (tmp_path / "bad.engine").exists()


def test_build_engine_cli_without_tensorrt_says_why(monkeypatch, tiny_sam2_export, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(SystemExit, match=r"build-engine: .*pip install './segzero_ros\[tensorrt\]'"):
        main(["-q", "build-engine", "--onnx", str(tiny_sam2_export), "--out", str(tmp_path / "e")])


# --- real TensorRT, where present ----------------------------------------------------------------

MISSING = [
    *(["the tensorrt package (not installable here)"] if importlib.util.find_spec("tensorrt") is None else []),
    *(["a CUDA GPU"] if not torch.cuda.is_available() else []),
]


@pytest.mark.gpu
@pytest.mark.skipif(bool(MISSING), reason="needs " + " and ".join(MISSING))
def test_real_tensorrt_fp16_masks_match_torch(tiny_sam2_config, tiny_sam2_export):
    torch_seg = make_segmenter(dataclasses.replace(tiny_sam2_config, device="cuda", precision="fp32"))
    trt_seg = make_segmenter(dataclasses.replace(tiny_sam2_config, backend="tensorrt", device="cuda"))
    rgb, _ = demo_scene(640, 480, seed=5)
    for a, b in zip(torch_seg.segment(rgb, TARGETS), trt_seg.segment(rgb, TARGETS), strict=True):
        union = np.logical_or(a.mask, b.mask).sum()
        assert union == 0 or np.logical_and(a.mask, b.mask).sum() / union >= 0.98
