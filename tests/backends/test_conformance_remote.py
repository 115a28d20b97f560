"""The conformance rules where a backend has no live context of its own.

openai: the same scripts as the local backends, served by a FAKE OpenAI server that honours ``stop`` the way
servers do (the reply ends before the first stop string), give the same decision lines; against a real
``llama_cpp.server`` (SmolLM2-135M) decisions are one line, the committed text is what the next request
carries, ``max_tokens`` bounds a decision and a chunk reset starts from the system prompt alone.
heuristic and lite: one line per decision, normalisable, and a chunk reset.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from engine.backends.base import BackendConfig, OpenAIOptions
from engine.backends.openai_compat import OpenAIBackend
from engine.context import Turn
from engine.protocol import normalize
from tests.backends.conftest import PREFIX, smollm2_path
from tests.backends.test_conformance import SCRIPTS


class _Scripted(BaseHTTPRequestHandler):
    """FAKE OpenAI server: the model "writes" ``server.text`` (up to ``<|im_end|>``); stop strings cut it."""

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.seen.append(body)
        text = self.server.text.split("<|im_end|>")[0]
        for stop in body.get("stop") or []:
            text = text.split(stop)[0]
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 10, "completion_tokens": 3}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="module")
def scripted_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    srv.seen, srv.text = [], ""
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("script", SCRIPTS, ids=[x[0] for x in SCRIPTS])
def test_openai_same_scripts_same_lines(scripted_server, script):
    _, text, want = script
    b = OpenAIBackend()
    b.load(BackendConfig(model="m", url=f"http://127.0.0.1:{scripted_server.server_address[1]}", seed=0,
                         openai=OpenAIOptions(images=False)))
    b.start_chunk(PREFIX)
    scripted_server.text, scripted_server.seen[:] = text, []
    b.observe(Turn(t=0))
    raw = "".join(b.decide(40))
    assert raw == want
    # one request, unless the server's newline stop fell before the decision's line (think block, blank line),
    # or nothing came back (an empty reply may be such a cut): then once more without the stop
    again = script[0] in ("blank-lines-first", "think-spans-lines", "empty")
    assert len(scripted_server.seen) == (2 if again else 1)
    assert "stop" not in scripted_server.seen[-1] if again else scripted_server.seen[0]["stop"] == ["\n"]
    d = normalize(raw)
    b.commit(d.canonical())
    assert b.messages[-1] == {"role": "assistant", "content": d.canonical()}


@pytest.fixture(scope="module")
def real_server():
    pytest.importorskip("llama_cpp")
    from tests.llama_server import server_available, start_llama_server

    ok, why = server_available()
    if not ok:
        pytest.skip(why)
    server = start_llama_server(smollm2_path(), n_ctx=2048)
    yield server
    server.stop()


def test_openai_against_a_real_server(real_server):
    b = OpenAIBackend()
    b.load(BackendConfig(model="default", url=real_server.url, seed=0, timeout_s=60,
                         openai=OpenAIOptions(images=False)))
    b.start_chunk(PREFIX)
    for t in range(2):
        b.observe(Turn(t=t, query="Say hello." if t == 0 else None))
        raw = "".join(b.decide(12))
        assert "\n" not in raw
        d = normalize(raw)
        b.commit(d.canonical())
        assert b.messages[-1]["content"] == d.canonical()  # the next request carries exactly the commit
        assert b.stats().tokens_context > 0
    b.observe(Turn(t=2))
    short = "".join(b.decide(2))
    assert json.loads(b.last_body)["max_tokens"] == 2 and len(short) <= 2 * 16  # at most two tokens came back
    b.start_chunk(PREFIX)
    assert b.messages == [{"role": "system", "content": PREFIX.system}]


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = []
    for i in range(n):  # a hard cut every 3 frames
        out.append(base if (i // 3) % 2 == 0 else 255 - base)
    return out


@pytest.mark.parametrize("name", ["heuristic", "lite"])
def test_rule_backends_write_one_normalisable_line_and_reset(name):
    if name == "lite":
        from engine.backends.lite import LiteBackend, LiteOptions

        ok, why = LiteBackend.is_available()
        if not ok:
            pytest.skip(why)
        b = LiteBackend(LiteOptions(llm=False))
    else:
        from engine.backends.heuristic import HeuristicBackend, HeuristicOptions

        b = HeuristicBackend(HeuristicOptions(ocr=False))  # the headline OCR is not what is checked here
    b.load(BackendConfig())
    for chunk in range(2):
        b.start_chunk(PREFIX)
        actions = []
        for i, px in enumerate(_frames(7)):
            b.observe(Turn(t=7 * chunk + i, pixels=px))  # stream time goes on across a chunk boundary
            raw = "".join(b.decide(40))
            assert "\n" not in raw.strip()
            d = normalize(raw)
            actions.append(d.action)
            b.commit(d.canonical())
        assert set(actions) <= {"silence", "response"} and "response" in actions, (chunk, actions)
