"""One way from configuration to models (``segzero_ros.build``), used by the node, the CLI and the evaluation; the
reasoner interface and registries; the package's import structure; one-line model loading errors."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segzero_ros import build, params
from segzero_ros.cli import build_parser, main
from segzero_ros.scenes import demo_scene

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "segzero_ros" / "segzero_ros"


# --- configuration ------------------------------------------------------------------------------------------------


def test_a_preset_fills_only_what_was_not_given():
    tiny = build.resolve({}, build.TINY)
    assert (tiny["reasoner.model"], tiny["segmenter.model"]) == (build.TINY, build.TINY)
    mine = build.resolve({"reasoner.model": "/ckpt/my-grpo-run"}, build.TINY)
    assert (mine["reasoner.model"], mine["segmenter.model"]) == ("/ckpt/my-grpo-run", build.TINY)
    remote = build.resolve({"reasoner.backend": "openai"}, build.TINY)  # the reasoner stays on its server
    assert (remote["reasoner.model"], remote["segmenter.model"]) == (params.BY_NAME["reasoner.model"].default, "tiny")
    assert build.resolve({}, "")["reasoner.model"] == params.BY_NAME["reasoner.model"].default


def test_tiny_reasoner_config_takes_its_own_input_size_unless_one_is_given(tiny_fitted_reasoner_dir):
    assert build.reasoner_config(build.resolve({}, build.TINY)).image_size == 112
    assert build.reasoner_config(build.resolve({"reasoner.image_size": 224}, build.TINY)).image_size == 224
    assert build.reasoner_config(build.resolve({}, build.TINY)).model == str(tiny_fitted_reasoner_dir)


def test_values_are_checked_as_the_node_checks_its_parameters():
    with pytest.raises(ValueError, match=r"reasoner\.protocol must be one of"):
        build.resolve({"reasoner.protocol": "yolo"})
    with pytest.raises(ValueError, match="not a model parameter"):
        build.resolve({"max_pending_goals": 3})
    assert build.resolve({"reasoner.timeout_s": 5})["reasoner.timeout_s"] == 5.0  # int for a float, as ROS allows


def test_node_parameters_and_command_line_options_cannot_drift_apart():
    """Every model parameter of the node is an option of every model command (``segment``: those of SAM2), same name,
    type, choices, default."""
    parser = build_parser()
    commands = {n: sub for action in parser._actions if action.dest == "command" for n, sub in action.choices.items()}
    from training.evaluate import build_parser as eval_parser

    for command, sub in [*((c, commands[c]) for c in ("infer", "demo", "segment")), ("eval", eval_parser())]:
        options = {action.dest: action for action in sub._actions}
        for param in build.MODEL_PARAMETERS:
            action = options.get(param.name)
            if command == "segment" and not param.name.startswith(("segmenter.", "reasoner.local_files_only")):
                assert action is None, f"segzero segment lists --{param.name}, which it does not use"
                continue
            assert action is not None, f"segzero {command} has no --{param.name}"
            assert f"--{param.name}" in action.option_strings
            assert param.description in action.help and repr(param.default) in action.help
            if not isinstance(param.default, bool):
                assert action.type is type(param.default), (command, param.name)
                assert tuple(action.choices or ()) == tuple(param.choices or ()), (command, param.name)
        extra = {
            dest
            for dest, action in options.items()
            if (getattr(action.container, "title", None) or "").startswith("models") and dest not in params.BY_NAME
        }
        assert extra <= {"tiny", "device"}, f"segzero {command}: model options that are no node parameter: {extra}"


def test_the_evaluation_evaluates_the_checkpoint_it_is_given(tiny_reasoner_dir, tiny_fitted_reasoner_dir, capsys):
    """``--tiny --reasoner CKPT`` used to evaluate the fitted tiny reasoner instead of CKPT."""
    from training.evaluate import main as evaluate

    args = ["--tiny", "--reasoner", str(tiny_reasoner_dir), "--data", "synthetic", "--limit", "2", "--json", "-q"]
    assert evaluate(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["models"]["reasoner"] == str(tiny_reasoner_dir) != str(tiny_fitted_reasoner_dir)
    assert "sam2_tiny.pt" in summary["models"]["sam2"]  # --tiny filled what was not given: the tiny SAM2


def test_infer_runs_the_openai_backend_against_a_server(tiny_sam2_config, tmp_path, capsys):
    from fake_openai import ANSWER, FakeOpenAI

    server = FakeOpenAI()
    server.script(ANSWER)
    image = tmp_path / "scene.png"
    Image.fromarray(demo_scene(320, 240)[0]).save(image)
    try:
        args = ["-q", "infer", "--tiny", "--reasoner.backend", "openai", "--reasoner.endpoint", server.endpoint]
        args += ["--reasoner.api_model", "served-seg-zero", "--image", str(image), "--goal", "the red cup", "--json"]
        assert main(args) == 0
    finally:
        server.close()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["targets"][0]["area"] > 0
    assert server.requests[0]["model"] == "served-seg-zero" and server.requests[0]["temperature"] == 0


@pytest.mark.parametrize(
    ("option", "model", "expected"),
    [
        ("--reasoner", "/nowhere/qwen", "reasoner '/nowhere/qwen' could not be loaded"),
        ("--reasoner", "nobody/no-such-model", "reasoner 'nobody/no-such-model' could not be loaded"),
        ("--sam2", "/nowhere/sam2_hiera_large.pt", "SAM2 '/nowhere/sam2_hiera_large.pt' could not be loaded"),
    ],
)
def test_a_model_that_cannot_be_loaded_is_one_line_with_the_ways_out(option, model, expected, tmp_path):
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    other = "--sam2" if option == "--reasoner" else "--reasoner"
    args = ["-q", "infer", "--image", str(image), "--goal", "cup", option, model, other, "tiny"]
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run(
        [sys.executable, "-m", "segzero_ros.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "ways out" in lines[0], done.stderr[-3000:]


def test_a_checkpoint_of_the_wrong_kind_is_named(tiny_sam2_config, tmp_path):
    with pytest.raises(build.ModelLoadError, match=r"reasoner .* could not be loaded .*ways out"):
        build.build_reasoner(build.resolve({"reasoner.model": str(Path(tiny_sam2_config.model).parent)}))


def test_sam2_short_config_names():
    from segzero_ros.benchmarks.sam2 import base_config
    from segzero_ros.segmenter.checkpoints import sam2_config_name

    assert sam2_config_name("sam2.1_hiera_t") == "configs/sam2.1/sam2.1_hiera_t.yaml"
    assert sam2_config_name("sam2_hiera_l.yaml") == "configs/sam2/sam2_hiera_l.yaml"
    assert sam2_config_name("configs/sam2.1/sam2.1_hiera_b+.yaml") == "configs/sam2.1/sam2.1_hiera_b+.yaml"
    assert base_config("sam2.1_hiera_t", "cpu").config == "configs/sam2.1/sam2.1_hiera_t.yaml"


# --- interfaces and registries -----------------------------------------------------------------------------------


def test_both_reasoner_backends_implement_the_interface(tiny_fitted_reasoner_dir):
    from segzero_ros.reasoner.base import REASONER_BACKENDS, ReasonerBackend, backend_class

    local = build.build_reasoner(build.resolve({}, build.TINY))
    remote = build.build_reasoner(build.resolve({"reasoner.backend": "openai"}))
    for reasoner in (local, remote):
        assert isinstance(reasoner, ReasonerBackend) and reasoner.description
    reasoner = remote
    reasoner.update({"protocol": "multi", "timeout_s": 3.0, "something_else": 1})
    assert (reasoner.config.protocol, reasoner.remote.timeout_s) == ("multi", 3.0)
    assert set(REASONER_BACKENDS) == set(params.BY_NAME["reasoner.backend"].choices)
    assert all(backend_class(name).OPTIONS is not None for name in REASONER_BACKENDS)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top level and inside functions), absolute names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _module_name(path: Path) -> str:
    return "segzero_ros." + path.relative_to(PACKAGE).with_suffix("").as_posix().replace("/", ".")


def _module_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    files |= {f"training.{p.stem}": p for p in (ROOT / "training").glob("*.py")}
    files = {name.removesuffix(".__init__"): path for name, path in files.items()}
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def test_no_import_cycles_in_the_package_and_training():
    graph = _module_graph()
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        seen[name] = 1
        for dep in sorted(graph[name]):
            if seen.get(dep) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path[path.index(dep) :], dep])}")
            if dep not in seen:
                visit(dep, [*path, dep])
        seen[name] = 2

    for name in sorted(graph):
        if name not in seen:
            visit(name, [name])
    assert "segzero_ros.cli" not in graph["training.evaluate"]  # evaluation builds models through build, not the CLI


def test_interfaces_name_no_backend():
    graph = _module_graph()
    backends = {"segzero_ros.segmenter.torch", "segzero_ros.segmenter.onnx", "segzero_ros.segmenter.tensorrt"}
    assert not graph["segzero_ros.segmenter.base"] & backends
    assert not graph["segzero_ros.reasoner.base"] & {"segzero_ros.reasoner.local", "segzero_ros.reasoner.remote"}
    leaves = ("segzero_ros.devices", "segzero_ros.protocol", "segzero_ros.hub", "segzero_ros.segmenter.checkpoints")
    for leaf in leaves:
        assert graph[leaf] <= {"segzero_ros.segmenter.base", "segzero_ros.protocol", "segzero_ros.hub"}, leaf


def test_only_the_ros_side_imports_ros():
    """Every module that imports rclpy (or ROS messages) lives in ``segzero_ros/ros/``: the nodes, the clients and
    their building blocks; the rest is plain Python."""
    checked = 0
    for path in PACKAGE.rglob("*.py"):
        name, imported = _module_name(path), {m.split(".")[0] for m in _imports(path)}
        if name == "segzero_ros.image_codec":  # the message codec: builds sensor_msgs/Image when asked, never rclpy
            imported -= {"sensor_msgs"}
        if imported & {"rclpy", "sensor_msgs", "std_msgs", "segzero_interfaces", "diagnostic_msgs"}:
            assert name.startswith("segzero_ros.ros."), f"{name} imports ROS outside segzero_ros/ros/"
            checked += 1
    assert checked >= 10  # the nodes, the client, process, outputs, messages, ... (the test sees their imports)


def test_a_transport_profile_that_does_not_exist_is_one_line():
    env = {"SEGZERO_FASTDDS_PROFILE": "/nowhere/profile.xml", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run(
        [sys.executable, "-m", "segzero_ros.cli", "-q", "camera", "--seconds", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    assert done.stderr.strip() == "segzero camera: SEGZERO_FASTDDS_PROFILE=/nowhere/profile.xml: no such file " + (
        "(a path, 'auto' or 'none')"
    )


def test_every_live_parameter_names_where_a_change_goes():
    """The node applies live changes from the parameter table: each target exists on its owner."""
    import inspect

    from segzero_ros import pipeline, scheduling, tracker, tracking_loop
    from segzero_ros.reasoner.base import LIVE_FIELDS
    from segzero_ros.reasoner.remote import RemoteReasoner
    from segzero_ros.ros import node

    sources = {
        "node": inspect.getsource(node.SegZeroNode),
        "schedule": inspect.getsource(scheduling.Schedule),
        "pipeline": inspect.getsource(pipeline.Pipeline),
        "tracking": inspect.getsource(tracking_loop.TrackingLoop),
        "tracker": inspect.getsource(tracker.Tracker),
    }
    live = [p for p in params.PARAMETERS if not p.read_only and not p.name.startswith("depth.")]
    assert len([p for p in live if p.applies_to]) >= 14
    for param in live:
        if not param.applies_to:
            continue
        owner, _, attribute = param.applies_to.partition(".")
        if owner == "reasoner":
            assert attribute in (*LIVE_FIELDS, *RemoteReasoner.OPTIONS), param.name
        else:
            assert f"self.{attribute} = " in sources[owner] or f"self.{attribute}, " in sources[owner], param.name
    for param in params.PARAMETERS:
        assert not (param.read_only and param.applies_to), param.name
