"""Frames received across processes by QoS, frame size and Fast DDS profile: the README's transport table.

    python bench/transport_matrix.py [--seconds 10] [--rate 30] [--json] [--cases NAME,...]

Each case runs a camera (``test/image_stream.py publish``) and a plain subscriber (``... count``) as two
processes of their own on a private DDS domain (localhost discovery) and reports frames published / received
and the median stamp-to-callback latency. "profile" cases give the publisher's process the shipped
``config/fastdds_shm.xml``; the others run Fast DDS as installed (its 512 KB shared-memory segment).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STREAM = ROOT / "test" / "image_stream.py"
PROFILE = ROOT / "segzero_ros" / "config" / "fastdds_shm.xml"
FASTDDS_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE", "SEGZERO_FASTDDS_PROFILE")

# name -> (width, height, publisher QoS, subscriber QoS, profile in the publisher's process)
CASES: dict[str, tuple[int, int, str, str, bool]] = {
    "be-be-400x300": (400, 300, "best_effort", "best_effort", False),
    "be-be-640x480": (640, 480, "best_effort", "best_effort", False),
    "be-be-1280x720": (1280, 720, "best_effort", "best_effort", False),
    "rel-be-1280x720": (1280, 720, "reliable", "best_effort", False),
    "rel-rel-1280x720": (1280, 720, "reliable", "reliable", False),
    "be-be-1280x720-profile": (1280, 720, "best_effort", "best_effort", True),
    "rel-be-1280x720-profile": (1280, 720, "reliable", "best_effort", True),
    "rel-rel-1280x720-profile": (1280, 720, "reliable", "reliable", True),
}


def _env(domain: int, profile: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FASTDDS_VARIABLES}
    env.update(ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    return env


def run_case(name: str, seconds: float, rate: float, domain: int) -> dict:
    width, height, pub_qos, sub_qos, profile = CASES[name]
    counter = subprocess.Popen(
        [sys.executable, str(STREAM), "count", "--qos", sub_qos, "--seconds", str(seconds + 6)],
        env=_env(domain, False),
        stdout=subprocess.PIPE,
        text=True,
    )
    args = ["publish", "--qos", pub_qos, "--seconds", str(seconds), "--rate", str(rate)]
    publisher = subprocess.run(
        [sys.executable, str(STREAM), *args, "--width", str(width), "--height", str(height)],
        env=_env(domain, profile),
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )
    received = json.loads(counter.communicate(timeout=seconds + 120)[0].strip().splitlines()[-1])
    published = json.loads(publisher.stdout.strip().splitlines()[-1])["published"]
    return {
        "case": name,
        "frame": f"{width}x{height} rgb8 ({width * height * 3 / 1e6:.2f} MB)",
        "publisher_qos": pub_qos,
        "subscriber_qos": sub_qos,
        "publisher_profile": "fastdds_shm.xml" if profile else "none (Fast DDS defaults)",
        "published": published,
        "received": received["received"],
        "received_fraction": round(received["received"] / published, 3) if published else None,
        "latency_ms_median": received["latency_ms"]["median"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for k, name in enumerate(args.cases.split(",")):
        rows.append(run_case(name, args.seconds, args.rate, domain=150 + (os.getpid() + k) % 80))
        if not args.json:
            row = rows[-1]
            print(
                f"{row['case']:<26} {row['received']:>4} / {row['published']:<4} "
                f"median latency {row['latency_ms_median']} ms",
                flush=True,
            )
        time.sleep(1.0)
    if args.json:
        print(json.dumps({"date": time.strftime("%Y-%m-%d"), "seconds": args.seconds, "rate": args.rate, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
