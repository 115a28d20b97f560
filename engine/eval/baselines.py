"""Trivial baselines for every quality report: never respond, always respond.

They run through the same session loop and protocol as real backends (dedup included), so the
always-respond baseline cycles through lines different enough that dedup lets each one through:
it is the reply-spam trap that timing-only metrics reward and SW-F1 / the duplicate rate expose.
Registered for the runner by name (not entry points: they are measuring sticks, not products).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.backends.base import Backend, BackendConfig
from engine.context import ChunkPrefix, Turn

_SPAM = [
    "Something is happening on screen.",
    "I am watching the stream closely.",
    "Here is an update for you.",
    "Nothing important to report yet, but I am here.",
    "The picture looks about the same as before.",
    "Still following along with you.",
    "Let me know if you need anything.",
]


class NeverBackend(Backend):
    name = "never"

    def load(self, config: BackendConfig) -> None:
        pass

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        pass

    def observe(self, turn: Turn) -> None:
        pass

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield "</silence>"

    def commit(self, text: str) -> None:
        pass


class AlwaysBackend(NeverBackend):
    name = "always"

    def __init__(self) -> None:
        self._i = 0

    def observe(self, turn: Turn) -> None:
        self._i = turn.t

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        yield f"</response> {_SPAM[self._i % len(_SPAM)]}"


BASELINES: dict[str, type[Backend]] = {"never": NeverBackend, "always": AlwaysBackend}
