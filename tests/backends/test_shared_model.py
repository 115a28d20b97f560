"""One loaded llama.cpp model serves several streams (llama.cpp sequence ids): interleaved ticks of two
streams on one model give exactly what each stream gives alone on its own model (greedy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from engine.backends.base import BackendConfig, LlamaCppOptions  # noqa: E402
from engine.backends.llamacpp import LlamaCppBackend  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.protocol import normalize  # noqa: E402
from tests.tiny_models import smollm2_gguf  # noqa: E402

PREFIX = ChunkPrefix(system="You watch a stream. Reply with </silence> or </response> text.", text="")
QUERIES = {0: "Say hello to the cat.", 1: "What colour is the slide?"}  # the two streams differ from the start
TICKS = 2


def _model(kind: str, request) -> tuple[Path, bool]:
    if kind == "smollm2":
        return smollm2_gguf(), False
    return request.getfixturevalue("vlm_ggufs")[kind][0], True  # only this case needs the VLM pair


def _load(model: Path) -> LlamaCppBackend:
    b = LlamaCppBackend()
    b.load(BackendConfig(model=str(model), n_ctx=512, greedy=True, llamacpp=LlamaCppOptions(n_threads=1)))
    return b


def _frame(stream: int, t: int) -> np.ndarray:
    return np.random.default_rng(100 * stream + t).integers(0, 256, (56, 56, 3), dtype=np.uint8)


def _ticks(b: LlamaCppBackend, stream: int, frames: bool):
    """Yields (raw decision, logits after the turn) for each tick of ``stream``."""
    b.start_chunk(PREFIX)
    for t in range(TICKS):
        b.observe(Turn(t=t, pixels=_frame(stream, t) if frames else None, query=QUERIES[stream] if t == 0 else None))
        logits = b.ctx.logits()
        raw = "".join(b.decide(6))
        b.commit(normalize(raw).canonical())
        yield raw, logits


@pytest.mark.parametrize("kind", ["smollm2", "qwen2.5-vl"])
def test_two_sequences_on_one_model_equal_two_separate_runs(kind, request):
    model, frames = _model(kind, request)
    b = _load(model)  # each stream alone (start_chunk empties the context; greedy needs no fresh rng)
    alone = {stream: list(_ticks(b, stream, frames)) for stream in (0, 1)}
    b.close()
    shared = _load(model)
    views = shared.for_streams(2)
    assert views[0].seq.model is views[1].seq.model is shared.seq.model  # one copy of the weights
    assert [v.ctx.seq_id for v in views] == [0, 1]
    gens = {s: _ticks(views[s], s, frames) for s in (0, 1)}
    got = {0: [], 1: []}
    for _ in range(TICKS):  # a tick of stream 0, then one of stream 1, …
        for s in (0, 1):
            got[s].append(next(gens[s]))
    for s in (0, 1):
        assert [r for r, _ in got[s]] == [r for r, _ in alone[s]]
        worst = max(float(np.max(np.abs(a - c))) for (_, a), (_, c) in zip(got[s], alone[s], strict=True))
        assert worst <= 1e-3, worst
        assert views[s].seq.n_cells > 0 and views[s].stats().tokens_context == views[s].seq.n_cells
    assert float(np.max(np.abs(got[0][0][1] - got[1][0][1]))) > 1e-3  # not vacuous: the streams differ
    for v in views:
        v.close()
    shared.close()


def test_openai_streams_keep_one_prefix_cached_conversation_each():
    """Against a FAKE OpenAI server that records each request: every stream has its own x-session-id, and
    each of its requests is its previous one plus one turn (what a prefix cache needs), whatever the other
    stream sent in between."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from engine.backends.openai_compat import OpenAIBackend

    seen: list[tuple[str, list]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            seen.append((self.headers["x-session-id"], body["messages"]))
            data = json.dumps({"choices": [{"message": {"content": "</silence>"}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        shared = OpenAIBackend()
        shared.load(BackendConfig(url=f"http://127.0.0.1:{srv.server_port}", model="m"))
        views = shared.for_streams(2)
        for v in views:
            v.start_chunk(PREFIX)
        for t in range(3):
            for s, v in enumerate(views):
                v.observe(Turn(t=t, pixels=_frame(s, t), query=QUERIES[s] if t == 0 else None))
                v.commit(normalize("".join(v.decide(8))).canonical())
    finally:
        srv.shutdown()
        srv.server_close()
    ids = [sid for sid, _ in seen]
    assert ids == [views[0].session_id, views[1].session_id] * 3 and views[0].session_id != views[1].session_id
    for sid in set(ids):
        mine = [m for s, m in seen if s == sid]
        for before, after in zip(mine, mine[1:], strict=False):
            assert after[:len(before)] == before and len(after) == len(before) + 2  # + the decision, + a turn
