"""ament_python package definition for segzero_ros (colcon and pip)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "segzero_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    package_data={PACKAGE: ["py.typed"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="segzero_ros maintainers",
    maintainer_email="maintainers@segzero-ros.dev",
    description="Reasoning segmentation (Seg-Zero: Qwen2.5-VL + SAM2) as a ROS 2 node.",
    license="Apache-2.0",
    python_requires=">=3.10",
    extras_require={"tensorrt": ["tensorrt-cu12"]},
    entry_points={
        "console_scripts": [
            "segzero = segzero_ros.cli:main",
            "segzero_node = segzero_ros.ros.node:main",
            "segzero_depth = segzero_ros.ros.depth_node:main",
        ],
    },
)
