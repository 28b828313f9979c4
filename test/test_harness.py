"""The test harness itself: a node log with a fault fails the test that ran the node."""

from __future__ import annotations

from ros_harness import log_faults

LOG = """[INFO] [1.0] [segzero]: active
idle-frame work failed
Traceback (most recent call last):
  File "worker.py", line 10, in _loop
IndexError: list index out of range
[INFO] [2.0] [segzero]: goal a: ok in 10 ms
worker failed on goal fault
Traceback (most recent call last):
RuntimeError: fault injected for testing
[INFO] [3.0] [segzero]: goal fault: error
"""


def test_log_faults_finds_tracebacks_and_worker_failures_but_not_injected_ones():
    faults = log_faults(LOG, allowed=("fault injected for testing",))
    assert len(faults) == 1 and "IndexError" in faults[0] and faults[0].startswith("idle-frame work failed")
    assert len(log_faults(LOG)) == 2
    assert log_faults("[INFO] [1.0] [segzero]: goal a: error (no image received within 5 s)\n") == []


def test_no_test_module_imports_another():
    """Shared helpers live in support modules (ros_harness, node_support, recordings, ...), not in test modules."""
    import ast
    from pathlib import Path

    for path in Path(__file__).parent.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not [n for n in names if n.split(".")[0].startswith("test_")], f"{path.name} imports {names}"
