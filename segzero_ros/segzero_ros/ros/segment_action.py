"""The ``segment`` action of the ``segzero`` node: one-shot goals queued with the topic goals under the same
rules, stage and partial-reasoning feedback, a ``SegmentationResult`` for every accepted goal.

The server lives from the node's activation to its cleanup: while the node is inactive it refuses new goals but
still sends the results of goals answered on deactivation. A cancel is accepted while the goal is in flight: a
queued goal is dropped (its result says "cancelled"); once the models run on it, its answer stands and its
targets are not tracked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rclpy.task
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from segzero_interfaces.action import Segment
from segzero_interfaces.msg import SegmentationResult

from segzero_ros.goals import Goal
from segzero_ros.image_codec import ImageConversionError, image_to_numpy
from segzero_ros.ros.messages import without_images
from segzero_ros.ros.qos import ACTION_SERVICE_QOS, ACTION_STATUS_QOS
from segzero_ros.worker import Frame


class SegmentAction:
    """See the module docstring. The node gives it the limits of a goal (``limits()``: most goal characters, largest
    image side), how to queue a goal (False: the node takes no work now), how to cancel one (False: it is not
    in flight any more), and the result of a goal it cannot queue."""

    def __init__(
        self,
        node: Any,
        limits: Callable[[], tuple[int, int]],
        submit: Callable[[Goal], bool],
        cancel: Callable[[Goal], bool],
        refusal: Callable[[Goal], SegmentationResult],
    ) -> None:
        self._node = node
        self._limits, self._submit, self._cancel, self._refusal = limits, submit, cancel, refusal
        self.accepting = False
        # Goals in flight: id of the worker's Goal -> (that Goal, its goal handle, the future of its result).
        self._goals: dict[int, tuple[Goal, Any, rclpy.task.Future]] = {}
        self._server = ActionServer(
            node,
            Segment,
            "segment",
            execute_callback=self._execute,
            goal_callback=lambda _request: GoalResponse.ACCEPT if self.accepting else GoalResponse.REJECT,
            cancel_callback=self._on_cancel,
            goal_service_qos_profile=ACTION_SERVICE_QOS,
            result_service_qos_profile=ACTION_SERVICE_QOS,
            cancel_service_qos_profile=ACTION_SERVICE_QOS,
            status_pub_qos_profile=ACTION_STATUS_QOS,
        )

    @property
    def in_flight(self) -> int:
        """Accepted goals whose result is not yet handed to the server."""
        return len(self._goals)

    def feedback(self, goal: Goal, stage: str, partial_reasoning: str = "") -> None:
        """Feedback for ``goal`` when it is an action goal (best effort: the result still comes)."""
        entry = self._goals.get(id(goal))
        if entry is None:
            return
        try:
            entry[1].publish_feedback(Segment.Feedback(stage=stage, partial_reasoning=partial_reasoning))
        except Exception as exc:
            self._node.get_logger().debug(f"feedback for goal {goal.id} not sent: {exc}")

    def resolve(self, goal: Goal, result: SegmentationResult) -> None:
        """``goal``'s answer (from any thread): its action result, when it is an action goal."""
        entry = self._goals.pop(id(goal), None)
        if entry is not None:
            entry[2].set_result(result)

    def destroy(self) -> None:
        self._server.destroy()

    def make_goal(self, request: Any) -> Goal:
        """A worker ``Goal`` from a ``Segment`` goal, checked; an explicit image becomes its frame."""
        max_chars, max_image_size = self._limits()
        goal = Goal(text=request.goal, multi=True if request.multi else None)
        goal.id = request.goal_id or goal.id
        goal.check(max_chars)
        if request.image.width or request.image.height or request.image.data:
            try:
                array = image_to_numpy(request.image, max_size=max_image_size)
                goal.frame = Frame(array=array, encoding=request.image.encoding, header=request.image.header)
            except ImageConversionError as exc:
                goal.error = goal.error or f"bad image in the goal: {exc}"
        return goal

    async def _execute(self, handle: Any) -> Any:
        goal = self.make_goal(handle.request)
        future = rclpy.task.Future(executor=self._node.executor)
        future.add_done_callback(lambda _f: None)  # a done callback makes set_result (worker thread) wake us
        self._goals[id(goal)] = (goal, handle, future)
        self._node.get_logger().info(f"action {goal.describe()}")
        if not self.accepting or not self._submit(goal):  # deactivated between acceptance and execution
            self.resolve(goal, self._refusal(goal))
        msg = await future
        if handle.request.omit_images:
            msg = without_images(msg)
        try:
            if msg.status == "ok":
                handle.succeed()
            elif msg.status == "cancelled" and handle.is_cancel_requested:
                handle.canceled()
            else:
                handle.abort()
        except Exception as exc:  # the goal's status could not be published; its result still goes out
            self._node.callback_failed(exc)
        return Segment.Result(result=msg)

    def _on_cancel(self, handle: Any) -> CancelResponse:
        for goal, pending, _ in list(self._goals.values()):
            if pending is handle:
                return CancelResponse.ACCEPT if self._cancel(goal) else CancelResponse.REJECT
        return CancelResponse.REJECT
