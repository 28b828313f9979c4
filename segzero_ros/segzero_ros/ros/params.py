"""ROS parameters of a node from ``segzero_ros.params`` definitions: declared with descriptors (description,
range, read-only), and every change checked before it is accepted (refused with the reason)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult

from segzero_ros.params import Param, validate


def descriptor(param: Param) -> ParameterDescriptor:
    """The ``ParameterDescriptor`` of a definition: its description (with the choices), range and read-only flag."""
    text = param.description + (f" (one of: {', '.join(map(repr, param.choices))})" if param.choices else "")
    desc = ParameterDescriptor(description=text, read_only=param.read_only)
    if param.low is not None and isinstance(param.default, int) and not isinstance(param.default, bool):
        desc.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=int(param.step))]
    elif param.low is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(param.low), to_value=float(param.high))]
    return desc


def declare(node: Any, parameters: tuple[Param, ...], on_change: Callable[[str, Any], None] | None = None) -> None:
    """Declare ``parameters`` on ``node``; changes are validated, then each accepted one goes to ``on_change``."""
    by_name = {p.name: p for p in parameters}
    for param in parameters:
        node.declare_parameter(param.name, param.default, descriptor(param))

    def on_set(changes: list[Any]) -> SetParametersResult:
        for change in changes:
            reason = validate(change.name, change.value, by_name)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        if on_change is not None:
            for change in changes:
                on_change(change.name, change.value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
