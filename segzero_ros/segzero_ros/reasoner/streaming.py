"""Generated text as it grows: a transformers streamer that hands a callback the whole answer so far."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import TextStreamer


class TextSoFarStreamer(TextStreamer):
    """``TextStreamer`` (prompt skipped, special tokens dropped, text released at word boundaries) that calls
    ``on_text`` with everything decoded so far instead of printing; runs in the generating thread."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        self.on_text = on_text
        self.text = ""

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.text += text
            self.on_text(self.text)
