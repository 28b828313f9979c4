"""Launch the segzero node (and with use_depth:=true the segzero_depth node):

    ros2 launch segzero_ros segzero.launch.py image_topic:=/camera/color/image_raw use_depth:=true \
        depth_topic:=/camera/aligned_depth_to_color/image_raw camera_info_topic:=/camera/color/camera_info
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    config = os.path.join(get_package_share_directory("segzero_ros"), "config")
    default_params = os.path.join(config, "segzero.yaml")
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
            SetEnvironmentVariable("SEGZERO_FASTDDS_PROFILE", LaunchConfiguration("fastdds_profile")),
            Node(
                package="segzero_ros",
                executable="segzero_node",
                name="segzero",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file")],
                remappings=[
                    ("image", LaunchConfiguration("image_topic")),
                    ("image/compressed", [LaunchConfiguration("image_topic"), "/compressed"]),
                    ("goal", LaunchConfiguration("goal_topic")),
                ],
                output="screen",
                emulate_tty=True,
            ),
            Node(
                package="segzero_ros",
                executable="segzero_depth",
                name="segzero_depth",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("depth_params_file")],
                remappings=[
                    ("depth", LaunchConfiguration("depth_topic")),
                    ("camera_info", LaunchConfiguration("camera_info_topic")),
                ],
                condition=IfCondition(LaunchConfiguration("use_depth")),
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
