"""Reasoner backends behind one interface (``ReasonerBackend``): the local transformers Qwen2.5-VL (``local``) and an
OpenAI-compatible server such as vLLM (``remote``); ``make_reasoner`` builds the one a configuration names."""

from segzero_ros.reasoner.base import ReasonerBackend, ReasonerConfig, Reasoning, make_reasoner

__all__ = ["ReasonerBackend", "ReasonerConfig", "Reasoning", "make_reasoner"]
