"""``segzero_node`` with test hooks, for tests only (the installed node reads no test switches).

    python test/hooked_node.py --ros-args -p preset:=tiny

A goal whose text is ``FAULT_GOAL`` raises inside the node's run (the worker's safety net must answer it); a
goal ``slow:<seconds> <text>`` waits that long before it runs, so a test can keep the node busy for a known time.
"""

from __future__ import annotations

import time

FAULT_GOAL = "__inject_a_pipeline_fault__"
SLOW_PREFIX = "slow:"


def main() -> None:
    from segzero_ros.ros import node

    run = node.SegZeroNode._run

    def hooked_run(self, frame, goal):
        if goal.text == FAULT_GOAL:
            raise RuntimeError("fault injected for testing")
        if isinstance(goal.text, str) and goal.text.startswith(SLOW_PREFIX):
            seconds, _, rest = goal.text[len(SLOW_PREFIX) :].partition(" ")
            time.sleep(float(seconds))
            goal.text = rest
        return run(self, frame, goal)

    node.SegZeroNode._run = hooked_run
    node.main()


if __name__ == "__main__":
    main()
