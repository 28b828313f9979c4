"""segzero_ros: reasoning segmentation (Seg-Zero) for ROS 2 robots."""

__version__ = "0.1.0"
