"""Goal scheduling without ROS: newest frame, bounded queue, one result per goal."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from segzero_ros.goals import Goal, goal_from_message
from segzero_ros.pipeline import Result
from segzero_ros.worker import Frame, GoalWorker


class Recorder:
    """A fake pipeline run (slow on demand) and a result sink."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.results: list[tuple[Goal, Frame | None, Result]] = []
        self.frames_used: list[Frame] = []
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()

    def run(self, frame: Frame, goal: Goal) -> Result:
        self.gate.wait(10)
        time.sleep(self.delay)
        self.frames_used.append(frame)
        if goal.text == "raise":
            raise RuntimeError("boom")
        return Result(goal=goal.text, goal_id=goal.id, protocol="segzero", image_wh=(4, 4))

    def on_result(self, goal, frame, result) -> None:
        with self.lock:
            self.results.append((goal, frame, result))

    def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.results) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.results) >= n, f"only {len(self.results)} of {n} results"


def frame(tag: int) -> Frame:
    return Frame(array=np.full((4, 4, 3), tag, np.uint8), encoding="rgb8", header=tag)


@pytest.fixture()
def rec_worker():
    rec = Recorder()
    worker = GoalWorker(rec.run, rec.on_result, max_pending_goals=2, image_timeout_s=0.3)
    worker.start()
    yield rec, worker
    worker.stop()


def test_goal_runs_on_the_newest_frame(rec_worker):
    rec, worker = rec_worker
    for tag in (1, 2, 3):
        worker.offer_frame(frame(tag))
    worker.submit(Goal("cup", id="a"))
    rec.wait(1)
    _goal, used, result = rec.results[0]
    assert result.ok and used.header == 3
    assert worker.stats.frames_received == 3 and worker.stats.frames_replaced == 2
    assert worker.stats.frames_rejected == 0  # replaced frames are no fault


def test_goal_without_image_fails_after_timeout(rec_worker):
    rec, worker = rec_worker
    start = time.monotonic()
    worker.submit(Goal("cup", id="early"))
    rec.wait(1)
    assert time.monotonic() - start >= 0.3
    assert rec.results[0][2].error == "no image received within 0.3 s"


def test_goal_waits_for_a_frame_that_arrives_in_time(rec_worker):
    rec, worker = rec_worker
    worker.schedule.image_timeout_s = 5.0
    worker.submit(Goal("cup", id="waits"))
    time.sleep(0.1)
    worker.offer_frame(frame(9))
    rec.wait(1)
    assert rec.results[0][2].ok and rec.results[0][1].header == 9


def test_full_queue_supersedes_the_oldest_and_every_goal_gets_one_result(rec_worker):
    rec, worker = rec_worker
    worker.offer_frame(frame(1))
    rec.gate.clear()  # hold the worker on the first goal
    ids = [f"g{i}" for i in range(10)]
    worker.submit(Goal("cup", id=ids[0]))
    time.sleep(0.1)
    for goal_id in ids[1:]:
        worker.submit(Goal("cup", id=goal_id))
    rec.gate.set()
    rec.wait(10)
    time.sleep(0.1)
    by_id = {g.id: r for g, _, r in rec.results}
    assert sorted(by_id) == sorted(ids) and len(rec.results) == 10
    assert [i for i in ids if by_id[i].ok] == ["g0", "g8", "g9"]
    assert all("superseded" in by_id[i].error for i in ids[1:8])


def test_cancel_and_stop_answer_pending_goals(rec_worker):
    rec, worker = rec_worker
    worker.offer_frame(frame(1))
    rec.gate.clear()
    worker.submit(Goal("cup", id="c0"))
    time.sleep(0.1)  # the worker holds c0
    for i in (1, 2):
        worker.submit(Goal("cup", id=f"c{i}"))
    assert [g.id for g in worker.cancel()] == ["c1", "c2"]
    rec.gate.set()
    rec.wait(3)
    errors = {g.id: r.error for g, _, r in rec.results}
    assert errors == {"c0": None, "c1": "cancelled", "c2": "cancelled"}


def test_cancel_of_one_goal_leaves_the_others_queued(rec_worker):
    rec, worker = rec_worker
    worker.offer_frame(frame(1))
    rec.gate.clear()
    worker.submit(Goal("cup", id="d0"))
    time.sleep(0.1)  # the worker holds d0
    d1, d2 = Goal("cup", id="d1"), Goal("cup", id="d2")
    worker.submit(d1)
    worker.submit(d2)
    assert worker.busy
    assert [g.id for g in worker.cancel(d1)] == ["d1"] and worker.pending_goals() == [d2]
    assert worker.cancel(Goal("cup", id="d1")) == []  # identity, not equal fields
    rec.gate.set()
    rec.wait(3)
    assert {g.id: r.error for g, _, r in rec.results} == {"d0": None, "d1": "cancelled", "d2": None}


def test_goal_with_its_own_frame_skips_the_camera_frame_and_the_wait(rec_worker):
    rec, worker = rec_worker
    own = frame(7)
    worker.submit(Goal("cup", id="own", frame=own))  # no camera frame ever arrived: no image wait either
    rec.wait(1, timeout=0.25)
    goal, used, result = rec.results[0]
    assert goal.id == "own"
    assert result.ok and used is own and rec.frames_used == [own]
    worker.offer_frame(frame(1))
    worker.submit(Goal("cup", id="camera"))
    rec.wait(2)
    assert rec.results[1][1].header == 1


def test_exception_in_run_is_an_error_result_and_the_worker_lives(rec_worker):
    rec, worker = rec_worker
    worker.offer_frame(frame(1))
    worker.submit(Goal("raise", id="bad"))
    worker.submit(Goal("cup", id="good"))
    rec.wait(2)
    errors = {g.id: r.error for g, _, r in rec.results}
    assert errors["bad"] == "internal error: RuntimeError: boom" and errors["good"] is None
    assert worker.stats.goals_failed == 1 and worker.stats.goals_ok == 1


def test_malformed_goal_is_answered_with_its_error(rec_worker):
    rec, worker = rec_worker
    worker.offer_frame(frame(1))
    worker.submit(goal_from_message("{not json"))
    rec.wait(1)
    assert rec.results[0][2].error.startswith("malformed JSON goal")
    assert rec.frames_used == []  # never reached the pipeline


def test_malformed_goal_is_answered_at_once_not_queued_behind_busy_work(rec_worker):
    rec, worker = rec_worker
    rec.gate.clear()  # the pipeline is busy
    worker.offer_frame(frame(1))
    worker.submit(Goal(text="cup", id="running"))
    deadline = time.monotonic() + 10
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(2):
        worker.submit(Goal(text="cup", id=f"queued-{i}"))
    worker.submit(goal_from_message('{"id": "bad", "text": '))
    assert len(rec.results) == 1  # answered before anything else, and nothing was superseded
    assert worker.pending == 2 and rec.results[0][2].error.startswith("malformed JSON goal")
    rec.gate.set()
    rec.wait(4)
    assert sorted(g.id for g, _, r in rec.results if r.ok) == ["queued-0", "queued-1", "running"]


def test_memory_stays_flat_under_a_frame_flood(rec_worker):
    _, worker = rec_worker
    for i in range(2000):
        worker.offer_frame(Frame(array=np.zeros((720, 1280, 3), np.uint8), encoding="rgb8", header=i))
    assert worker.newest_frame().header == 1999
    assert worker.stats.frames_replaced == 1999


def test_idle_frames_go_to_the_idle_callback_newest_only_and_never_before_goals():
    rec = Recorder()
    seen: list[int] = []
    gate = threading.Event()

    def on_idle(f: Frame) -> None:
        seen.append(f.header)
        gate.wait(5)

    worker = GoalWorker(rec.run, rec.on_result, on_idle_frame=on_idle)
    worker.start()
    try:
        worker.offer_frame(frame(1))
        time.sleep(0.1)
        assert seen == []  # idle work is off until asked for
        worker.call_soon(lambda: setattr(worker, "idle_frames", True))  # the worker thread owns the flag
        time.sleep(0.1)
        assert seen == [1]  # the callback holds the worker: frames 2..4 arrive meanwhile
        for tag in (2, 3, 4):
            worker.offer_frame(frame(tag))
        worker.submit(Goal("cup", id="g"))
        gate.set()
        rec.wait(1)
        time.sleep(0.2)
        assert rec.results[0][1].header == 4  # the pending goal went first, on the newest frame
        assert seen == [1]  # frame 4 was used by the goal; 2 and 3 were skipped, not queued
        worker.offer_frame(frame(5))
        deadline = time.monotonic() + 5
        while seen[-1] != 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen == [1, 5]
    finally:
        gate.set()
        worker.stop()


def test_stop_answers_queued_goals_at_once_and_a_stuck_goal_once():
    rec = Recorder()
    rec.gate.clear()  # the running goal never ends on its own
    worker = GoalWorker(rec.run, rec.on_result, max_pending_goals=4)
    worker.start()
    worker.offer_frame(frame(1))
    worker.submit(Goal("cup", id="stuck"))
    deadline = time.monotonic() + 5
    while not worker.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.submit(Goal("cup", id="queued"))
    worker.stop(timeout=0.3, reason="node shutting down")
    assert {g.id: r.error for g, _, r in rec.results} == {"queued": "node shutting down", "stuck": "node shutting down"}
    assert [g.id for g, _, _ in rec.results] == ["queued", "stuck"]  # the queue is answered before the wait
    rec.gate.set()  # the stuck run ends after all: its late result is not sent
    time.sleep(0.3)
    assert len(rec.results) == 2


def test_a_stale_frame_makes_the_goal_wait_then_fail_camera_silent():
    rec = Recorder()
    worker = GoalWorker(rec.run, rec.on_result, image_timeout_s=0.3, max_frame_age_s=0.2)
    worker.start()
    try:
        worker.offer_frame(Frame(array=np.zeros((4, 4, 3), np.uint8), encoding="rgb8", received=time.monotonic() - 5))
        worker.submit(Goal("cup", id="stale"))
        rec.wait(1)
        assert rec.results[0][2].error.startswith("camera silent for 5.")
        assert "image_max_age_s = 0.2 s" in rec.results[0][2].error
        assert worker.frame_age_s() > 5
        # A fresh frame during the wait is taken.
        worker.offer_frame(Frame(array=np.zeros((4, 4, 3), np.uint8), encoding="rgb8", received=time.monotonic() - 5))
        worker.submit(Goal("cup", id="waits"))
        time.sleep(0.1)
        worker.offer_frame(frame(7))
        rec.wait(2)
        assert rec.results[1][2].ok and rec.results[1][1].header == 7
    finally:
        worker.stop()


def test_no_image_error_names_why_frames_were_dropped():
    rec = Recorder()
    worker = GoalWorker(rec.run, rec.on_result, image_timeout_s=0.2)
    worker.start()
    try:
        worker.note_dropped("unsupported encoding 'bayer_rggb16'")
        worker.submit(Goal("cup", id="nothing"))
        rec.wait(1)
        error = rec.results[0][2].error
        assert error == "no image received within 0.2 s; frames arrive but are dropped: unsupported encoding " + (
            "'bayer_rggb16'"
        )
        assert (worker.stats.frames_rejected, worker.stats.frames_replaced) == (1, 0)
    finally:
        worker.stop()


def test_only_goals_the_worker_ran_reach_after_goal_and_on_its_thread():
    """Refused, superseded and cancelled goals are answered without touching what the worker thread owns."""
    rec = Recorder()
    after: list[tuple[str, str, bool]] = []
    worker = GoalWorker(
        rec.run,
        rec.on_result,
        max_pending_goals=1,
        image_timeout_s=0.2,
        after_goal=lambda g, f, r: after.append((g.id, threading.current_thread().name, r.ok)),
    )
    worker.start()
    try:
        worker.offer_frame(frame(1))
        rec.gate.clear()  # hold the worker on the first goal
        worker.submit(Goal("cup", id="ran"))
        time.sleep(0.1)
        worker.submit(goal_from_message("", 100).check(100))  # refused at intake
        worker.submit(Goal("cup", id="superseded"))
        worker.submit(Goal("cup", id="cancelled"))  # supersedes the one before
        worker.cancel()
        rec.gate.set()
        rec.wait(4)
        worker.schedule.max_frame_age_s = 0.01  # the only frame is stale now: the next goal runs and fails
        worker.submit(Goal("cup", id="stale"))
        rec.wait(5)
        time.sleep(0.2)
        errors = {g.id: r.error for g, _, r in rec.results}
        assert errors["superseded"].startswith("superseded") and errors["cancelled"] == "cancelled"
        assert errors["stale"].startswith("camera silent") and len(errors) == 5
        assert [(goal_id, ok) for goal_id, _, ok in after] == [("ran", True), ("stale", False)]
        assert {thread for _, thread, _ in after} == {"segzero-worker"}
    finally:
        worker.stop()


def test_call_soon_runs_on_the_worker_thread_between_jobs_and_inline_when_stopped():
    rec = Recorder()
    worker = GoalWorker(rec.run, rec.on_result)
    ran: list[tuple[int, str]] = []
    worker.start()
    try:
        worker.offer_frame(frame(1))
        rec.gate.clear()
        worker.submit(Goal("cup", id="busy"))
        time.sleep(0.1)
        worker.call_soon(lambda: ran.append((len(rec.results), threading.current_thread().name)))
        time.sleep(0.1)
        assert ran == []  # the running job is never interrupted
        rec.gate.set()
        rec.wait(1)
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran == [(1, "segzero-worker")]
    finally:
        worker.stop()
    worker.call_soon(lambda: ran.append((-1, threading.current_thread().name)))
    assert ran[-1] == (-1, threading.current_thread().name)
