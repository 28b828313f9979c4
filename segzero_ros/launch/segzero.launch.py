"""Launch the segzero node: `ros2 launch segzero_ros segzero.launch.py image_topic:=/camera/color/image_raw`."""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("segzero_ros"), "config", "segzero.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
            DeclareLaunchArgument("image_topic", default_value="image", description="camera image topic"),
            DeclareLaunchArgument("goal_topic", default_value="goal", description="goal (std_msgs/String) topic"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
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
        ]
    )
