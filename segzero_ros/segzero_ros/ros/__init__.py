"""The ROS side's building blocks, used by ``node.py`` and ``depth_node.py`` (the core never imports them)."""
