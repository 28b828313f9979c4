"""Image + goal → ``Result``: the one place where the reasoning model and SAM2 meet."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segzero_ros.goals import DEFAULT_MAX_CHARS, check_goal
from segzero_ros.instances import MAX_LABEL, instance_id, target_labels
from segzero_ros.protocol import Target
from segzero_ros.reasoner.base import ReasonerBackend, Reasoning
from segzero_ros.segmenter import Segmenter
from segzero_ros.segmenter.base import check_rgb

LOG = logging.getLogger(__name__)


def label_image(
    masks: Sequence[np.ndarray | None], shape: tuple[int, int], values: Sequence[int] | None = None
) -> np.ndarray:
    """uint16 ``shape``: 0 background, ``values[k]`` (default k + 1) on mask k (``None`` or value 0 = not drawn);
    the earlier mask wins where masks overlap."""
    out = np.zeros(shape, dtype=np.uint16)
    values = values if values is not None else range(1, MAX_LABEL + 1)
    for value, mask in reversed(list(zip(values, masks[:MAX_LABEL], strict=False))):
        if mask is not None and 0 < value <= MAX_LABEL:
            np.copyto(out, value, where=mask)
    return out


@dataclass
class Result:
    """The outcome of one goal on one image: targets and masks in camera pixels, or the reason it failed."""

    goal: str
    goal_id: str
    protocol: str
    image_wh: tuple[int, int]
    error: str | None = None
    think: str | None = None
    text: str = ""
    targets: list[Target] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # prompt and generated token counts of the reasoner
    cancelled: bool = False  # dropped by a cancel before it ran (``error`` says so too)
    label_values: list[int] | None = None  # each target's value in ``labels`` (None: k for target k)

    def label_value(self, k: int) -> int:
        """The value of target ``k`` (1-based) in ``labels``: k, or the one tracking gave it."""
        return self.label_values[k - 1] if self.label_values is not None else k

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"

    def union(self) -> np.ndarray:
        """All targets' masks OR-ed into one bool H×W mask (the reference's multi-object output)."""
        w, h = self.image_wh
        out = np.zeros((h, w), dtype=bool)
        for mask in self.masks:
            out |= mask
        return out

    def labels(self) -> np.ndarray:
        """uint16 H×W: 0 background, target k's value (``label_value``) on its pixels; where targets overlap the
        earlier one wins."""
        w, h = self.image_wh
        return label_image(self.masks, (h, w), self.label_values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no mask pixels): id, goal, status, error, targets, timings."""
        targets = []
        labels = target_labels(self.goal, self.targets)
        for i, target in enumerate(self.targets):
            entry: dict[str, Any] = {"id": instance_id(self.goal_id, i + 1), "label": labels[i]}
            entry |= {"bbox": list(target.bbox), "points": [list(p) for p in target.points]}
            if i < len(self.masks):
                entry["area"] = int(self.masks[i].sum())
                entry["score"] = round(self.scores[i], 4)
            targets.append(entry)
        return {
            "id": self.goal_id,
            "goal": self.goal,
            "protocol": self.protocol,
            "status": self.status,
            "error": self.error,
            "reasoning": self.think,
            "answer": self.text,
            "targets": targets,
            "image": {"width": self.image_wh[0], "height": self.image_wh[1]},
            "warnings": self.warnings,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "tokens": dict(self.tokens),
        }


class Pipeline:
    """``Pipeline(reasoner, segmenter).run(rgb, goal)``: reason, then segment every target on the same frame."""

    def __init__(
        self, reasoner: ReasonerBackend, segmenter: Segmenter, max_goal_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        self.reasoner = reasoner
        self.segmenter = segmenter
        self.max_goal_chars = max_goal_chars

    @property
    def default_protocol(self) -> str:
        return self.reasoner.config.protocol

    def run(
        self,
        rgb: np.ndarray,
        goal: str,
        goal_id: str | None = None,
        multi: bool | None = None,
        on_stage: Callable[[str], None] | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Result:
        """Reason about ``goal`` on ``rgb`` (H×W×3 uint8) and segment what it names; never raises for bad input.

        ``on_stage`` is told ``"reasoning"`` and then ``"segmenting"`` as the run gets there; ``on_text``
        receives the model's answer so far while it is generated."""
        protocol = self.default_protocol if multi is None else ("multi" if multi else "segzero")
        image_wh = (int(rgb.shape[1]), int(rgb.shape[0])) if getattr(rgb, "ndim", 0) >= 2 else (0, 0)
        result = Result(
            goal=goal if isinstance(goal, str) else repr(goal),
            goal_id=goal_id or uuid.uuid4().hex[:12],
            protocol=protocol,
            image_wh=image_wh,
        )
        start = time.perf_counter()
        try:
            goal = check_goal(goal, self.max_goal_chars)
            check_rgb(rgb)
            if on_stage is not None:
                on_stage("reasoning")
            reasoning = self.reasoner.reason(rgb, goal, protocol, on_text=on_text)
            self._take_reasoning(result, reasoning)
            if reasoning.ok:
                if on_stage is not None:
                    on_stage("segmenting")
                t0 = time.perf_counter()
                segments = self.segmenter.segment(rgb, reasoning.targets)
                result.timings_ms["segment_ms"] = (time.perf_counter() - t0) * 1e3
                result.masks = [s.mask for s in segments]
                result.scores = [s.score for s in segments]
        except Exception as exc:  # every goal gets a result, whatever failed
            result.error = describe_error(exc)
            LOG.warning("goal %s failed: %s", result.goal_id, result.error)
        result.timings_ms["total_ms"] = (time.perf_counter() - start) * 1e3
        return result

    @staticmethod
    def _take_reasoning(result: Result, reasoning: Reasoning) -> None:
        result.text = reasoning.text
        result.think = reasoning.think
        result.targets = reasoning.targets
        result.error = reasoning.error
        result.warnings = reasoning.warnings
        result.tokens = {"prompt": reasoning.prompt_tokens, "generated": reasoning.new_tokens}
        result.timings_ms["reason_ms"] = sum(reasoning.timings_ms.values())
        result.timings_ms.update(reasoning.timings_ms)

    def close(self) -> None:
        self.reasoner.close()
        self.segmenter.close()


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a failed goal; out-of-memory errors say so plainly."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return f"out of memory: {text[:200]}"
    if isinstance(exc, ValueError):  # GoalError included
        return text[:300] or name
    return f"{name}: {text[:300]}"
