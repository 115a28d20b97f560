"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM with prefix caching,
llama-server / ``python -m llama_cpp.server``, Ollama). The scale-out path: one server, many streams.

Requests are laid out like the reference adapter (seed_systems §1.3) so a server's prefix cache
hits on every tick::

    [system]     system prompt                                          fixed for the session
    [user]       {prefix text} {notes} {[User Query …]} <0.0 seconds> [image_url]   ← first turn of the chunk
    [assistant]  </silence>                                             the normalised decision
    [user]       <1.0 seconds> [image_url]
    ...

Within a chunk every request is the previous one plus one user turn (and the previous decision),
byte for byte: frames are encoded once (deterministic JPEG data URLs) and kept, messages are
serialised the same way each time. Only the standard library talks HTTP. A server that is down or
failing becomes a ``BackendError`` after bounded retries (the session logs an ``error`` and a
``skipped(backend_error)`` and goes on); the next tick simply tries again, so the stream recovers
when the server returns. A turn that could not be answered is not kept, but its query and notes
are carried into the next turn so nothing the user said is lost.

Several streams (engine/streams.py): ``for_streams(n)`` gives one backend per stream, each its own
prefix-cached conversation with its own ``x-session-id`` (``<id>-s<i>``); their requests go to the server
at the same time (``serves_concurrently``), and the server batches them.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import numpy as np

from engine.backends.base import (
    Backend,
    BackendConfig,
    BackendError,
    BackendStats,
    ModelLoadError,
    OpenAIOptions,
)
from engine.backends.decoding import THINK_OPEN, decision_line
from engine.context import ChunkPrefix, Turn

SESSION_HEADER = "x-streaming-session"


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> str:
    """A ``data:image/jpeg;base64,…`` URL for an RGB frame [h, w, 3]. Deterministic for equal input."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels[..., :3], dtype=np.uint8), "RGB").save(
        buf, format="JPEG", quality=quality, optimize=False)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def api_base(url: str) -> str:
    """``http://host:8000`` or ``…/v1`` → ``…/v1`` (no trailing slash)."""
    url = url.rstrip("/")
    if not url:
        raise ModelLoadError("the openai backend needs a server URL (--url http://host:8000/v1)")
    if not url.startswith(("http://", "https://")):
        raise ModelLoadError(f"not an http(s) URL: {url}")
    return url if url.endswith("/v1") else url + "/v1"


class OpenAIBackend(Backend):
    name = "openai"
    serves_concurrently = True  # a server takes several streams' requests at once

    def __init__(self) -> None:
        self.config = BackendConfig()
        self.options = OpenAIOptions()
        self.base = ""
        self.session_id = ""
        self.messages: list[dict] = []  # the chunk so far: system, then user/assistant pairs
        self._pending: dict | None = None  # this tick's user turn, sent by decide()
        self._carry: list[str] = []  # query/notes of a turn the server never answered
        self._pending_carry: list[str] = []
        self._first_in_chunk = True
        self._prefix_text = ""
        self._stats = BackendStats()
        self.last_body = b""  # the exact bytes of the last request (tests check the prefix)
        self.requests = 0

    # --- lifecycle ------------------------------------------------------------------------------
    def load(self, config: BackendConfig) -> None:
        self.config = config
        self.options = config.openai
        self.base = api_base(config.url)
        self.wants_frames = self.options.images
        self.session_id = self.options.session or f"presence-{uuid.uuid4().hex[:12]}"
        if config.api_key_env and not os.environ.get(config.api_key_env):
            raise ModelLoadError(f"the API key variable {config.api_key_env} is not set")

    def for_streams(self, n: int) -> list[OpenAIBackend]:
        """``n`` backends on the same server, stream ``i`` as conversation ``<session id>-s<i>``."""
        views = []
        for i in range(n):
            view = OpenAIBackend()
            view.config, view.options, view.base, view.wants_frames = self.config, self.options, self.base, self.wants_frames
            view.session_id = f"{self.session_id}-s{i}"
            views.append(view)
        return views

    def start_chunk(self, prefix: ChunkPrefix) -> None:
        self.messages = [{"role": "system", "content": prefix.system}]
        self._prefix_text = prefix.text.strip()
        self._first_in_chunk = True
        self._pending = None

    def observe(self, turn: Turn) -> None:
        parts: list[dict] = []
        carried, self._carry = self._carry, []
        texts = ([self._prefix_text] if self._first_in_chunk and self._prefix_text else []) + carried
        texts.append(turn.text_before_image())
        if not self.options.images:  # text-only servers: plain string content (many reject part lists)
            self._pending = {"role": "user", "content": "\n".join(texts)}
        else:
            parts.extend({"type": "text", "text": t} for t in texts)
            if turn.pixels is not None:
                url = encode_jpeg(turn.pixels, self.options.jpeg_quality)
                parts.append({"type": "image_url", "image_url": {"url": url}})
            self._pending = {"role": "user", "content": parts}
        # What may be carried if this turn goes unanswered: its query and notes, not its time or frame.
        self._pending_carry = carried + list(turn.notes) + ([_query_text(turn)] if turn.query else [])

    def decide(self, max_tokens: int = 128) -> Iterator[str]:
        if self._pending is None:
            raise BackendError("decide() without observe()")
        c = self.config
        body = {"messages": self.messages + [self._pending], "model": c.model or "default",
                "max_tokens": max_tokens, "temperature": 0.0 if c.greedy else c.temperature,
                "top_p": 1.0 if c.greedy else c.top_p, "top_k": 1 if c.greedy else c.top_k,
                "seed": c.seed, "stream": False, "user": self.session_id}
        if self.options.stop:
            body["stop"] = self.options.stop
        body.update(self.options.extra_body)
        try:
            reply, text = self._complete(body)
            if body.get("stop") and _cut_too_early(text):
                # The server's newline stop fell inside a leading <think> block (or on a blank first line),
                # where the shared stop rule does not end a decision: ask again without it, same seed.
                reply, text = self._complete({k: v for k, v in body.items() if k != "stop"})
        except BackendError:
            self._carry = self._pending_carry  # keep what the user said for the next turn
            self._pending = None
            raise
        text = decision_line(text)[0]  # the same stop rule as the local backends: one line
        usage = reply.get("usage") or {}
        prompt = int(usage.get("prompt_tokens") or 0)
        cached = int(((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0)
        if cached:  # the server says how much of the prompt its prefix cache served
            new = prompt - cached
        elif self._first_in_chunk:
            new = prompt
        else:  # what this request added to the last one's context
            new = max(prompt - self._stats.tokens_context, 0)
        self._stats = BackendStats(tokens_context=prompt + int(usage.get("completion_tokens") or 0), tokens_new=new)
        yield text

    def commit(self, text: str) -> None:
        if self._pending is None:
            return
        self.messages.append(self._pending)
        self.messages.append({"role": "assistant", "content": text})
        self._pending = None
        self._first_in_chunk = False

    def stats(self) -> BackendStats:
        return self._stats

    def _complete(self, body: dict) -> tuple[dict, str]:
        reply = self._post("/chat/completions", body)
        try:
            return reply, reply["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise BackendError(f"openai backend: unexpected reply from {self.base}: {str(reply)[:200]}") from exc

    # --- HTTP -----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json", SESSION_HEADER: self.session_id, "x-session-id": self.session_id}
        key = os.environ.get(self.config.api_key_env) if self.config.api_key_env else None
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _post(self, path: str, body: dict) -> dict:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.last_body = data
        url = self.base + path
        delay = self.options.backoff_s
        last = ""
        for attempt in range(self.options.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            self.requests += 1
            req = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.config.timeout_s) as r:
                    return json.loads(r.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace").replace("\n", " ")
                last = f"HTTP {exc.code}: {detail}"
                if exc.code not in (408, 429) and exc.code < 500:
                    raise BackendError(f"openai backend: {url} refused the request ({last})") from exc
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}" if not isinstance(reason, str) else reason
            except json.JSONDecodeError as exc:
                last = f"invalid JSON reply ({exc})"
        raise BackendError(f"openai backend: cannot get a reply from {url} after "
                           f"{self.options.retries + 1} tries ({last})")


def _cut_too_early(text: str) -> bool:
    """A reply cut at a newline before the decision's line began (decoding.decision_line's rule)."""
    body = text.lstrip()
    return not body or (body.startswith(THINK_OPEN) and not decision_line(text)[1])


def _query_text(turn: Turn) -> str:
    from engine.context import QUERY_HEADER

    return f"{QUERY_HEADER}\n{turn.query}"
