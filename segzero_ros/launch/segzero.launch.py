"""Launch the segzero node (and with use_depth:=true the segzero_depth node).

    ros2 launch segzero_ros segzero.launch.py image_topic:=/camera/color/image_raw use_depth:=true \
        depth_topic:=/camera/aligned_depth_to_color/image_raw camera_info_topic:=/camera/color/camera_info
    ros2 launch segzero_ros segzero.launch.py preset:=tiny                      # offline tiny models
    ros2 launch segzero_ros segzero.launch.py overrides:="{reasoner: {max_new_tokens: 256}, tracking.enabled: false}"

Parameters come from params_file, then the common arguments below that are given (preset, image_qos, ...), then
``overrides`` (a YAML mapping of any node parameters, nested or dotted). Unknown names and invalid values stop
the launch with the reason, before any node starts.
"""

import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from segzero_ros import params

# Launch argument -> node parameter, for the settings people change most; "" (default) keeps params_file's value.
COMMON_ARGUMENTS = {
    "preset": ("preset", "'tiny': the offline tiny models (no downloads; answers carry no meaning)"),
    "image_qos": ("image_qos", "sensor_data (best effort) or reliable"),
    "compressed_input": ("compressed_input", "true: subscribe to <image_topic>/compressed"),
    "reasoner_model": ("reasoner.model", "Qwen2.5-VL checkpoint: Hugging Face id or local folder"),
    "reasoner_device": ("reasoner.device", "auto, cpu, cuda, cuda:N"),
    "segmenter_backend": ("segmenter.backend", "torch, torch_compiled, onnx, tensorrt, auto"),
    "segmenter_device": ("segmenter.device", "auto, cpu, cuda, cuda:N"),
    "tracking": ("tracking.enabled", "true/false: keep masks on the targets between goals"),
}


def node_overrides(values: dict[str, str]) -> dict:
    """The node parameters the launch arguments set (typed as YAML reads them), validated."""
    overrides = {}
    for argument, (name, _) in COMMON_ARGUMENTS.items():
        if values.get(argument, "") != "":
            overrides[name] = yaml.safe_load(values[argument])
    text = values.get("overrides", "").strip()
    if text:
        mapping = yaml.safe_load(text)
        if not isinstance(mapping, dict):
            raise RuntimeError(f"overrides must be a YAML mapping of node parameters, got {text!r}")
        overrides.update(params.flatten(mapping))
    for name, value in overrides.items():
        param = params.BY_NAME.get(name)
        if param is None:
            raise RuntimeError(f"overrides: unknown segzero parameter {name!r} (config/segzero.yaml lists them)")
        if isinstance(param.default, float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[name] = value = float(value)
        reason = params.validate(name, value)
        if reason:
            raise RuntimeError(f"overrides: {reason}")
    return overrides


def _nodes(context, *_, **__) -> list:
    values = {name: LaunchConfiguration(name).perform(context) for name in [*COMMON_ARGUMENTS, "overrides"]}
    overrides = node_overrides(values)
    namespace = LaunchConfiguration("namespace")
    segzero = Node(
        package="segzero_ros",
        executable="segzero_node",
        name="segzero",
        namespace=namespace,
        parameters=[LaunchConfiguration("params_file"), *([overrides] if overrides else [])],
        remappings=[
            ("image", LaunchConfiguration("image_topic")),
            ("image/compressed", [LaunchConfiguration("image_topic"), "/compressed"]),
            ("goal", LaunchConfiguration("goal_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )
    depth = Node(
        package="segzero_ros",
        executable="segzero_depth",
        name="segzero_depth",
        namespace=namespace,
        parameters=[LaunchConfiguration("depth_params_file")],
        remappings=[
            ("depth", LaunchConfiguration("depth_topic")),
            ("camera_info", LaunchConfiguration("camera_info_topic")),
        ],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        condition=IfCondition(LaunchConfiguration("use_depth")),
        output="screen",
        emulate_tty=True,
    )
    return [segzero, depth]


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory("segzero_ros"), "config")
    default_params = os.path.join(config, "segzero.yaml")
    common = [
        DeclareLaunchArgument(argument, default_value="", description=f"{name}: {text} ('' = params_file's)")
        for argument, (name, text) in COMMON_ARGUMENTS.items()
    ]
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
            DeclareLaunchArgument("image_topic", default_value="image", description="camera image topic"),
            DeclareLaunchArgument("goal_topic", default_value="goal", description="goal (std_msgs/String) topic"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
            DeclareLaunchArgument("use_depth", default_value="false", description="also start segzero_depth (3D)"),
            DeclareLaunchArgument(
                "depth_params_file",
                default_value=os.path.join(config, "segzero_depth.yaml"),
                description="segzero_depth parameters (YAML)",
            ),
            DeclareLaunchArgument(
                "depth_topic", default_value="depth", description="depth aligned to the colour camera"
            ),
            DeclareLaunchArgument("camera_info_topic", default_value="camera_info", description="colour camera info"),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value="auto",
                description="Fast DDS profile of the started nodes: auto (the shipped config/fastdds_shm.xml, a large "
                "shared-memory segment, unless FASTDDS_DEFAULT_PROFILES_FILE is set), none, or a path",
            ),
            *common,
            DeclareLaunchArgument(
                "overrides",
                default_value="",
                description='any node parameters as a YAML mapping, e.g. "{reasoner.max_new_tokens: 256}"',
            ),
            DeclareLaunchArgument("log_level", default_value="info", description="debug, info, warn, error"),
            SetEnvironmentVariable("SEGZERO_FASTDDS_PROFILE", LaunchConfiguration("fastdds_profile")),
            OpaqueFunction(function=_nodes),
        ]
    )
