"""DDS transport settings a node process applies to itself before ``rclpy.init``.

Fast DDS's default shared-memory segment (512 KB) is smaller than a camera frame; larger messages fall back to
fragmented UDP, where best-effort readers in other processes lose nearly all of them. Our nodes therefore load
the shipped ``config/fastdds_shm.xml`` (a 32 MB segment plus UDPv4) unless told otherwise:

- ``SEGZERO_FASTDDS_PROFILE`` unset or ``auto``: the shipped profile, unless ``FASTDDS_DEFAULT_PROFILES_FILE``
  (or the older ``FASTRTPS_DEFAULT_PROFILES_FILE``) already names one, which is kept;
- ``none``: nothing is changed (Fast DDS's own defaults or whatever the environment says);
- a path: that profile, whatever the environment says.

Other RMW implementations are left alone (README "Cameras and transport" says what to set for them).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path

CHOICE_VARIABLE = "SEGZERO_FASTDDS_PROFILE"
FASTDDS_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_FASTDDS_VARIABLE = "FASTRTPS_DEFAULT_PROFILES_FILE"
FASTDDS_RMWS = ("rmw_fastrtps_cpp", "rmw_fastrtps_dynamic_cpp")
PROFILE_NAME = "fastdds_shm.xml"
OFF_VALUES = ("none", "off", "false", "0")


class TransportConfigError(RuntimeError):
    """A transport setting that names something unusable (e.g. a profile file that does not exist)."""


def shipped_profile() -> Path:
    """The shipped Fast DDS profile: in the installed package's share folder, else in the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("segzero_ros")) / "config" / PROFILE_NAME
        if installed.is_file():
            return installed.resolve()  # a symlink into the source tree where the venv registers the package
    except (ImportError, LookupError, OSError):  # no ament index (a plain venv), or the package is not in it
        pass
    return Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME  # segzero_ros/segzero_ros/ros/ -> config/


def apply_defaults(environ: MutableMapping[str, str]) -> str:
    """Set the Fast DDS profile in ``environ`` as the module docstring says; a line for the node's log."""
    rmw = environ.get("RMW_IMPLEMENTATION") or "rmw_fastrtps_cpp"
    choice = (environ.get(CHOICE_VARIABLE) or "auto").strip()
    if rmw not in FASTDDS_RMWS:
        return f"transport: {rmw} (no Fast DDS profile applied)"
    if choice.lower() in OFF_VALUES:
        current = environ.get(FASTDDS_VARIABLE) or environ.get(LEGACY_FASTDDS_VARIABLE)
        return f"transport: Fast DDS profile {current or 'none (Fast DDS defaults)'} ({CHOICE_VARIABLE}={choice})"
    if choice.lower() == "auto":
        current = environ.get(FASTDDS_VARIABLE) or environ.get(LEGACY_FASTDDS_VARIABLE)
        if current:
            return f"transport: Fast DDS profile {current} (from the environment)"
        path = shipped_profile()
        if not path.is_file():
            raise TransportConfigError(f"the shipped Fast DDS profile {path} is missing (set {CHOICE_VARIABLE})")
    else:
        path = Path(choice).expanduser()
        if not path.is_file():
            raise TransportConfigError(f"{CHOICE_VARIABLE}={choice}: no such file (a path, 'auto' or 'none')")
    environ[FASTDDS_VARIABLE] = str(path)
    environ.pop(LEGACY_FASTDDS_VARIABLE, None)
    return f"transport: Fast DDS profile {path} (large shared-memory segment for outputs on this host)"
