"""Seg-Zero training on TRL: rewards, metrics, data, GRPO and evaluation (``python -m training.<module>``)."""
