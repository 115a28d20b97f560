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
from typing import Any, Literal

from engine.context import ChunkPrefix, HintOptions, Turn
from engine.kv.options import KVOptions  # the [backend.kv] section: one dataclass, in engine.kv
from engine.options import setting


class BackendError(RuntimeError):
    """A backend cannot go on (model missing, server down, context overflow). One readable line."""


class ModelLoadError(BackendError):
    """The model could not be loaded (missing file, wrong format, unsupported architecture)."""


@dataclass
class LlamaCppOptions:
    """``[backend.llamacpp]``: the GGUF backend (llama.cpp)."""

    n_threads: int = setting(0, "CPU threads (0 = llama.cpp's default)", ge=0)
    n_gpu_layers: int = setting(-1, "layers offloaded to the GPU (-1 = all when the build has a GPU, else none)",
                                ge=-1)
    text_only: bool = setting(False, "ignore a vision projector found beside the model")
    n_batch: int = 512  # internal: llama.cpp batch size for prefill
    flash_attn: bool | None = None  # internal: None = llama.cpp's choice
    decision_reserve: int = 0  # internal: context kept free for the decision (0 = the backend's default)


@dataclass
class OpenAIOptions:
    """``[backend.openai]``: any OpenAI-compatible server (vLLM, llama-server, Ollama)."""

    images: bool = setting(True, "send frames (off for text-only models)")
    retries: int = setting(2, "extra attempts after the first, for connection errors, 408, 429 and 5xx",
                           ge=0, le=10)
    jpeg_quality: int = 90  # internal
    backoff_s: float = 0.25  # internal: doubled after each failed attempt
    stop: list[str] = field(default_factory=lambda: ["\n"])  # internal: a decision is one line
    session: str = ""  # internal: x-streaming-session header ("" = a fresh id per backend)
    extra_body: dict[str, Any] = field(default_factory=dict)  # internal


@dataclass
class HeuristicOptions:
    """``[heuristic]``: the no-model backend responds when the scene changes against the last
    *responded* frame."""

    change_threshold: float = setting(0.05, "fraction of 32x24 thumbnail cells that changed", ge=0.0, le=1.0)
    cooldown_s: float = setting(1.0, "at least this long between two change responses", ge=0.0)
    ocr: bool = setting(True, "name the new screen's headline (needs rapidocr)")
    motion_eps: float = setting(0.004, "mean |delta| between frames above which the scene is still moving",
                                ge=0.0, le=1.0)


@dataclass
class BackendConfig:
    """``[backend]``: what a backend is told at ``load``; each backend kind reads its own typed section.

    model: a local path or a model id (hub ids only after ``presence models pull``).
    mode: ``native`` (a model trained on the JoyAI protocol) or ``prompt`` (any VLM, taught by prompt);
    ``auto`` is resolved by the composition root before ``load``.
    """

    name: str = setting("", "heuristic | lite | torch | llamacpp | openai (\"\" = the configured model, else "
                            "lite when installed, else heuristic)")
    model: str = setting("", "model directory, GGUF file or model id")
    mmproj: str = setting("", "GGUF vision projector (found beside the model when empty)")
    mode: Literal["auto", "native", "prompt"] = setting(
        "auto", "auto: native for JoyAI models, else prompt mode (any VLM taught by the system prompt)")
    delegation: bool = setting(True, "offer the delegate action to the model (only when a brain is configured)")
    device: str = setting("auto", "torch device: auto | cpu | cuda | cuda:N | mps")
    dtype: str = "auto"  # internal: torch dtype (auto = bf16 on CUDA, fp32 on CPU)
    quantization: Literal["none", "4bit", "8bit"] = setting("none", "torch weights on CUDA: none | 4bit | 8bit")
    kv_cache: Literal["full", "tailor", "quantized", "sink"] = setting("full", "torch KV cache kind (docs/kv_cache.md)")
    kv_type: Literal["auto", "f16", "q8_0", "q4_0"] = setting(
        "auto", "llama.cpp KV type: auto (f16 on CPU, q8_0 on GPU) | f16 | q8_0 | q4_0")
    n_ctx: int = setting(32768, "context length in tokens", ge=256)
    max_tokens: int = setting(128, "most tokens one decision may generate", ge=8, le=4096)
    tick_s: int = setting(1, "seconds per decision: 2 on hardware too slow for one a second (the other second "
                             "is recorded as skipped(tick))", ge=1, le=2)
    temperature: float = setting(0.8, "sampling temperature (JoyAI default)", ge=0.0, le=5.0)
    top_p: float = setting(0.9, "nucleus sampling mass", ge=0.0, le=1.0)
    top_k: int = setting(40, "sample among the k most likely tokens (0 = off)", ge=0)
    greedy: bool = setting(False, "always take the most likely token")
    seed: int = setting(0, "sampling seed (decisions repeat for the same input)", ge=0)
    silence_bias: float = 0.0  # set from [talk] silence_bias by the composition root
    url: str = setting("", "server URL for the openai backend")
    api_key_env: str = setting("", "environment variable holding the server's API key (the key is never stored)")
    timeout_s: float = setting(30.0, "seconds to wait for the openai backend", ge=0.1)
    llamacpp: LlamaCppOptions = setting(LlamaCppOptions, "the GGUF backend")
    openai: OpenAIOptions = setting(OpenAIOptions, "OpenAI-compatible servers")
    kv: KVOptions = setting(KVOptions, "the torch KV cache")
    hints: HintOptions = setting(HintOptions, "perception hints in each turn, for small models trained with them")
    heuristic: HeuristicOptions = field(default_factory=HeuristicOptions)  # from [heuristic]
    options: dict[str, Any] = field(default_factory=dict)  # internal knobs for tests and benchmarks


@dataclass
class BackendStats:
    """Figures a backend reports after each tick (they go into every ``decision`` event)."""

    tokens_context: int = 0
    tokens_new: int = 0
    kv_bytes_fast: int = 0  # on the device the model runs on
    kv_bytes_offload: int = 0  # host memory / offload tier
    kv_bytes_used: int = 0  # of fast + offload (which count spare capacity too), what holds tokens
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
