"""The `segzero` command on the tiny models: infer, segment, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import force_answer
from PIL import Image

from segzero_ros.cli import main
from segzero_ros.scenes import demo_scene
from segzero_ros.tiny import TINY_ANSWERS


@pytest.fixture()
def tiny_answers(tiny_reasoner_dir, monkeypatch):
    """The CLI's --tiny reasoner: the random-weight tiny model, its generate forced to the protocol answer."""
    from transformers import PreTrainedTokenizerFast, Qwen2_5_VLForConditionalGeneration

    import segzero_ros.tiny

    monkeypatch.setattr(segzero_ros.tiny, "tiny_reasoner_path", lambda fitted=True: tiny_reasoner_dir)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tiny_reasoner_dir)
    force_answer(Qwen2_5_VLForConditionalGeneration, tokenizer, monkeypatch, TINY_ANSWERS["segzero"])


@pytest.fixture()
def image_path(tmp_path):
    path = tmp_path / "scene.jpg"
    Image.fromarray(demo_scene(800, 600)[0]).save(path)
    return path


def test_infer_writes_masks_overlay_and_json(tiny_answers, tiny_sam2_config, image_path, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["-q", "infer", "--tiny", "--image", str(image_path), "--goal", "the red cup", "--out", str(out), "--json"]
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and printed["status"] == "ok"
    assert Image.open(out / "mask.png").size == (800, 600)
    assert Image.open(out / "overlay.png").size == (800, 600)
    assert set(np.unique(np.asarray(Image.open(out / "mask.png")))) <= {0, 255}
    assert json.loads((out / "result.json").read_text())["id"] == printed["id"]


def test_segment_alone(tiny_sam2_config, image_path, tmp_path, capsys):
    out = tmp_path / "seg"
    code = main(
        [
            "-q",
            "segment",
            "--tiny",
            "--image",
            str(image_path),
            "--box",
            "100,100,300,400",
            "--points",
            "150,200",
            "200,250",
            "--out",
            str(out),
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["points"] == [[150.0, 200.0], [200.0, 250.0]]
    assert Image.open(out / "mask.png").size == (800, 600)


def test_demo_says_it_used_tiny_weights(tiny_answers, tiny_sam2_config, tmp_path, capsys):
    code = main(["-q", "demo", "--out", str(tmp_path / "demo")])
    err = capsys.readouterr().err
    assert code == 0
    assert "carry no meaning" in err
    assert (tmp_path / "demo" / "overlay.png").exists() and (tmp_path / "demo" / "result.json").exists()


def test_unreadable_image_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(SystemExit, match="cannot read image"):
        main(["-q", "infer", "--tiny", "--image", str(bad), "--goal", "x"])


def test_bad_box_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["segment", "--image", "x.png", "--box", "5,5,1,1"])
    assert "x1 < x2" in capsys.readouterr().err


def test_export_onnx_then_infer_with_the_onnx_backend(tiny_answers, tiny_sam2_config, image_path, tmp_path, capsys):
    from segzero_ros.segmenter.export import read_export_info

    export = tmp_path / "onnx"
    assert main(["-q", "export-onnx", "--tiny", "--out", str(export)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["image_size"] == 256
    assert (export / "encoder.onnx").exists() and (export / "decoder.onnx").exists()
    assert read_export_info(export).multimask_output
    args = ["-q", "infer", "--tiny", "--sam2-backend", "onnx", "--image", str(image_path), "--json"]
    code = main([*args, "--goal", "the red cup"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and printed["status"] == "ok" and printed["targets"][0]["area"] > 0


def test_bench_sam2_json_is_keyed_by_backend(tiny_sam2_export, tmp_path, capsys, monkeypatch):
    """``segzero bench sam2 --json``: timings and ratios per backend; one that cannot run here says why."""
    import sys

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # as on every machine here
    out = tmp_path / "bench.json"
    args = ["-q", "bench", "sam2", "--config", "tiny", "--backends", "torch,onnx,tensorrt", "--repeats", "1"]
    assert main([*args, "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    assert list(result) == ["torch", "onnx", "tensorrt"]
    assert result["torch"]["speedup_vs_torch"] == 1.0 and result["torch"]["mask_iou_vs_torch"] == 1.0
    onnx = result["onnx"]
    assert onnx["encoder_ms"] > 0 and onnx["decoder_ms"] > 0 and onnx["mask_iou_vs_torch"] >= 0.99
    total = result["torch"]["encoder_ms"] + result["torch"]["decoder_ms"]
    assert onnx["speedup_vs_torch"] == pytest.approx(total / (onnx["encoder_ms"] + onnx["decoder_ms"]), rel=0.01)
    assert result["tensorrt"]["available"] is False and "'onnx'" in result["tensorrt"]["error"]


def test_bench_reasoner_json_has_every_path_and_token_identity(tiny_reasoner_dir, tmp_path, capsys):
    """``segzero bench reasoner --tiny --json``: prefill and decode speed per path, same greedy tokens."""
    out = tmp_path / "reasoner.json"
    args = ["-q", "bench", "reasoner", "--tiny", "--paths", "default,static", "--new-tokens", "8", "--repeats", "1"]
    assert main([*args, "--json", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    assert list(result["paths"]) == ["default", "static"] and result["same_tokens"] is True
    for path in result["paths"].values():
        assert path["prefill_ms"] > 0 and path["decode_tok_s"] > 0 and path["same_tokens"] is True
    speeds = {name: p["decode_tok_s"] for name, p in result["paths"].items()}
    assert result["best_path"] == max(speeds, key=speeds.get)
    assert result["best_decode_speedup"] == pytest.approx(speeds[result["best_path"]] / speeds["default"], rel=0.01)
    assert (result["model"], result["new_tokens"], result["image_size"]) == ("tiny", 8, 112)


# --- as a user runs them: each command its own process -------------------------------------------------------------

SEGZERO = str(Path(sys.executable).with_name("segzero"))


def segzero(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SEGZERO, *args], capture_output=True, text=True, timeout=300)


def test_usage_errors_are_two_lines_and_exit_2(image_path):
    for args in (["infer"], ["segment", "--image", str(image_path), "--box", "1,2"], ["infer", "--tiny", "--nope"]):
        done = segzero(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 2 and "error:" in lines[0], done.stderr
        assert lines[1].endswith("--help lists the options)") or lines[1].endswith("--help lists them)"), lines


def test_booleans_take_the_nodes_spelling(image_path, tiny_sam2_config, tiny_fitted_reasoner_dir):
    done = segzero(
        "infer",
        "--tiny",
        "--image",
        str(image_path),
        "--goal",
        "the red cup",
        "--json",
        "--reasoner.stop_at_answer",
        "true",
        "--reasoner.local_files_only",
        "false",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["status"] == "ok"
    done = segzero("infer", "--tiny", "--image", str(image_path), "--goal", "x", "--reasoner.strict", "maybe")
    assert done.returncode == 2 and "expected true or false, got 'maybe'" in done.stderr


def test_segment_lists_its_own_options_warns_for_a_box_outside_and_notes_only_sam2(
    image_path, tiny_sam2_config, tmp_path
):
    help_text = segzero("segment", "--help").stdout
    assert "--segmenter.backend" in help_text and "--local-files-only" in help_text
    assert "--reasoner.model" not in help_text and "--multi" not in help_text
    done = segzero("segment", "--tiny", "--image", str(image_path), "--box", "10,10,900,90", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "the box 10,10,900,90 reaches outside the 800x600 image" in done.stderr
    note = [line for line in done.stderr.splitlines() if line.startswith("NOTE:")]
    assert len(note) == 1 and "tiny SAM2" in note[0] and "reasoner" not in note[0].split("For real results")[0]
    assert "Warning" not in done.stderr  # no library noise (torchvision's read-only array warning was one)


def test_eval_refuses_a_split_that_does_not_exist():
    done = segzero("eval", "--tiny", "--data", "synthetic", "--split", "val,valx", "--limit", "1")
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == (
        "segzero eval: the synthetic set has no split 'valx' (it has train, val, test)"
    )


def test_a_gpu_asked_for_on_a_machine_without_one_says_so(image_path, tiny_sam2_config):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the case needs one without")
    done = segzero("segment", "--tiny", "--image", str(image_path), "--box", "10,10,90,90", "--device", "cuda")
    assert done.returncode == 3 and "no CUDA GPU is visible: use cpu or auto" in done.stderr
    assert "ways out" not in done.stderr
