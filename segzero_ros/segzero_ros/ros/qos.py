"""The QoS profiles of the nodes and clients, in one place (README: topic table and Failure behaviour)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data


def _reliable(depth: int) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


RELIABLE = _reliable(10)  # images out (mask, labels, overlay, segmentation), results into segzero_depth
RELIABLE_LATEST = _reliable(1)  # an image stream that must not be lost but never queued
RELIABLE_ANSWERS = _reliable(100)  # small answers (result, reasoning): deep enough for a burst of superseded goals
GOAL_QOS = _reliable(1000)  # goals and cancels: a burst is queued in full, each goal answered
BEST_EFFORT = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
SENSOR_DATA = qos_profile_sensor_data  # camera frames, depth, camera_info: best effort, accepts either publisher
# The action's services: request queues as deep as the goal topic's (rclpy's default of 10 cut bursts short).
ACTION_SERVICE_QOS = GOAL_QOS
# The action's goal status: transient local as rclpy's default, but a history of 100 instead of 1. With depth 1,
# a burst of status changes under Fast DDS's asynchronous publication made publish fail ("cannot publish data":
# the one sample still in flight cannot be replaced) and the goal being accepted was lost.
ACTION_STATUS_QOS = QoSProfile(
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
# label_info: the last map, kept for subscribers that join later (reliable, transient local, history 1).
LATCHED = QoSProfile(
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
    history=HistoryPolicy.KEEP_LAST,
)
