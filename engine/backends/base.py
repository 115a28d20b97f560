"""The one interface every interaction backend implements (DESIGN §4).

Per tick the session calls, in order::

    observe(turn)          # prefill only the new turn (time marker, frame, query) on the live context
    decide(max_tokens)     # stream the decision's raw text, stopping at the end of its line
    commit(text)           # leave the context holding exactly the normalised decision text

and ``start_chunk(prefix)`` at every chunk boundary (resets the context, prefills system + prefix).
A backend is used from one thread at a time (the session's engine thread).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.context import ChunkPrefix, Turn


class BackendError(RuntimeError):
    """A backend cannot go on (model missing, server down, context overflow). One readable line."""


class ModelLoadError(BackendError):
    """The model could not be loaded (missing file, wrong format, unsupported architecture)."""


@dataclass
class BackendConfig:
    """What a backend is told at ``load``. Backend-specific options live in ``options``.

    model: a local path or a model id (hub ids only after ``presence models pull``).
    mode: ``native`` (a model trained on the JoyAI protocol) or ``prompt`` (any VLM, taught by prompt).
    delegation: whether the delegate action is offered to the model.
    """

    model: str = ""
    mmproj: str = ""
    mode: str = "prompt"
    delegation: bool = True
    device: str = "auto"
    dtype: str = "auto"
    quantization: str = "none"  # none | 4bit | 8bit (torch on CUDA)
    kv_cache: str = "full"  # full | tailor | quantized | sink (torch)
    kv_type: str = "auto"  # llama.cpp KV type (auto: f16 on CPU, q8_0 on GPU)
    n_ctx: int = 32768
    temperature: float = 0.8
    top_p: float = 0.9
    top_k: int = 40
    greedy: bool = False
    seed: int = 0
    silence_bias: float = 0.0
    url: str = ""  # openai backend
    api_key_env: str = ""
    timeout_s: float = 30.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendStats:
    """Figures a backend reports after each tick (they go into every ``decision`` event)."""

    tokens_context: int = 0
    tokens_new: int = 0
    kv_bytes_fast: int = 0  # on the device the model runs on
    kv_bytes_offload: int = 0  # host memory / offload tier
    prefill_ms: float = 0.0  # observe()
    decide_ms: float = 0.0  # decide() + commit()


class Backend(ABC):
    """Base class. Subclasses set ``name`` and implement the abstract methods."""

    name: str = "base"
    #: True when the backend looks at pixels (so the session must supply frames).
    wants_frames: bool = True

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, install hint). Override when the backend needs optional packages."""
        return True, ""

    @abstractmethod
    def load(self, config: BackendConfig) -> None: ...

    @abstractmethod
    def start_chunk(self, prefix: ChunkPrefix) -> None: ...

    @abstractmethod
    def observe(self, turn: Turn) -> None: ...

    @abstractmethod
    def decide(self, max_tokens: int = 128) -> Iterator[str]: ...

    @abstractmethod
    def commit(self, text: str) -> None: ...

    def stats(self) -> BackendStats:
        return BackendStats()

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
