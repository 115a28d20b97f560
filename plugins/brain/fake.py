"""FAKE brains for tests and demos: they answer instantly (or slowly, or badly) from rules."""

from __future__ import annotations

import time

from engine.brain import BrainError


class EchoBrain:
    """FAKE: answers "Answer to: <question>" with a <summary>; optional delay / failure modes."""

    name = "echo"
    takes_images = False

    def __init__(self, delay_s: float = 0.0, fail: str = "", reply: str | None = None):
        self.delay_s = delay_s
        self.fail = fail  # "" | "error" | "garbage"
        self.reply = reply
        self.calls: list[tuple[str, str, int]] = []

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    def ask(self, question: str, context: str, frames_jpeg, timeout_s: float) -> str:
        self.calls.append((question, context, len(frames_jpeg or [])))
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail == "error":
            raise BrainError("echo brain is down (fake)")
        if self.fail == "garbage":
            return "<think>\x00\x01 ???"
        return self.reply if self.reply is not None else f"Thinking done. <summary>Answer to: {question}</summary>"
