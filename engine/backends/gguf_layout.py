"""How a chunk is written out as text for a GGUF chat model (one live sequence, appended to only).

ChatML (Qwen2.5-VL, Qwen3-VL, JoyAI-VL-Interaction, SmolLM2) — the pieces the llamacpp backend
evaluates, in order, and never rewrites within a chunk::

    start_chunk   <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{prefix}\\n
    observe(0)    {notes/query/<0.0 seconds>}{IMAGE}<|im_end|>\\n<|im_start|>assistant\\n
    commit        {decision}<|im_end|>\\n
    observe(1)    <|im_start|>user\\n{…<1.0 seconds>}{IMAGE}<|im_end|>\\n<|im_start|>assistant\\n
    ...

Other families get their layout from their own chat template (``chat_layout.derive_layout``); a GGUF
without a template falls back to ChatML when its vocabulary has the tokens, else to a plain
``User:``/``Assistant:`` layout with the same shape. ``{IMAGE}`` is the multimodal helper's media marker;
mtmd wraps it in the model's vision tokens.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    sys_open: str
    sys_close: str  # everything between the system text and the first user text (that user turn's opener too)
    user_open: str
    user_close: str  # ends the user turn and opens the assistant turn
    asst_close: str

    def chunk_start(self, system: str, prefix_text: str) -> str:
        head = f"{self.sys_open}{system}{self.sys_close}"
        return head + (prefix_text.strip() + "\n" if prefix_text.strip() else "")

    def turn(self, text: str, image_marker: str | None, first_in_chunk: bool) -> str:
        opener = "" if first_in_chunk else self.user_open
        return f"{opener}{text}{image_marker or ''}{self.user_close}"

    def decision(self, text: str) -> str:
        return f"{text}{self.asst_close}"


CHATML = Layout(
    sys_open="<|im_start|>system\n", sys_close="<|im_end|>\n<|im_start|>user\n", user_open="<|im_start|>user\n",
    user_close="<|im_end|>\n<|im_start|>assistant\n", asst_close="<|im_end|>\n",
)

PLAIN = Layout(
    sys_open="System: ", sys_close="\n\nUser: ", user_open="User: ", user_close="\nAssistant: ", asst_close="\n\n",
)
