"""The scheduling policy the node's worker and replay share (``scheduling.Schedule``), step by step."""

from segzero_ros.goals import Goal
from segzero_ros.scheduling import NoImage, Run, Schedule, Track, Wait


def test_a_goal_runs_on_the_newest_frame_and_then_new_frames_are_tracked_only_when_a_track_is_on():
    schedule = Schedule()
    assert not schedule.offer_frame("f1", 0.0)
    assert schedule.offer_frame("f2", 0.1)  # f1 was never used
    goal = Goal("x", id="g")
    assert schedule.submit(goal) == []
    assert schedule.next_step(0.2) == Run(goal, "f2")
    assert schedule.next_step(0.2) is None  # the goal took f2; nothing new
    schedule.offer_frame("f3", 0.3)
    assert schedule.next_step(0.3, tracking=False) is None
    assert schedule.next_step(0.3, tracking=True) == Track("f3")
    assert schedule.next_step(0.3, tracking=True) is None  # f3 is used


def test_intake_refuses_a_malformed_goal_and_supersedes_past_the_limit():
    schedule = Schedule(max_pending_goals=2)
    bad = Goal("", id="bad", error="empty goal")
    assert schedule.submit(bad) == [(bad, "empty goal")] and not schedule.goals
    goals = [Goal("x", id=f"g{k}") for k in range(3)]
    assert schedule.submit(goals[0]) == [] and schedule.submit(goals[1]) == []
    superseded = schedule.submit(goals[2])
    assert [(g.id, "superseded" in why) for g, why in superseded] == [("g0", True)]
    assert [g.id for g in schedule.cancel(goals[1])] == ["g1"] and list(schedule.goals) == [goals[2]]


def test_a_goal_waiting_for_a_frame_is_taken_not_pending_and_runs_on_the_first_fresh_frame():
    schedule = Schedule(max_pending_goals=1, image_timeout_s=2.0)
    waiting = Goal("x", id="w")
    schedule.submit(waiting)
    assert schedule.next_step(1.0) == Wait(waiting, 3.0)
    later = [Goal("x", id="a"), Goal("x", id="b")]
    assert schedule.submit(later[0]) == []  # the waiting goal does not count against the queue
    assert [g.id for g, _ in schedule.submit(later[1])] == ["a"]
    assert schedule.cancel() == [later[1]]  # the waiting goal is not pending: cancel leaves it
    schedule.offer_frame("f", 2.5)
    assert schedule.next_step(2.5) == Run(waiting, "f")


def test_past_its_deadline_a_goal_fails_with_no_image_or_camera_silent():
    schedule = Schedule(image_timeout_s=2.0, max_frame_age_s=1.0, image_source=lambda: "/camera/image")
    blind = Goal("x", id="blind")
    schedule.submit(blind)
    assert isinstance(schedule.next_step(0.0), Wait)
    assert schedule.next_step(2.0) == NoImage(blind, "no image received within 2 s on /camera/image", no_frame=True)
    schedule.offer_frame("old", 3.0)
    silent = Goal("x", id="silent")
    schedule.submit(silent)
    assert schedule.next_step(5.0) == Wait(silent, 7.0)  # the frame is 2 s old: too old
    step = schedule.next_step(7.5)
    assert step == NoImage(silent, "camera silent for 4.5 s (no frame newer than image_max_age_s = 1 s)", False)


def test_a_goal_with_its_own_image_runs_at_once_and_leaves_the_camera_frame_unused():
    schedule = Schedule()
    schedule.offer_frame("camera", 0.0)
    own = Goal("x", id="own", frame="its image")
    schedule.submit(own)
    assert schedule.next_step(0.0) == Run(own, "its image")
    assert schedule.next_step(0.0, tracking=True) == Track("camera")


def test_release_waiting_gives_up_the_goal_when_the_worker_stops():
    schedule = Schedule()
    goal = Goal("x", id="g")
    schedule.submit(goal)
    schedule.next_step(0.0)
    assert schedule.release_waiting() is goal and schedule.next_step(10.0) is None
