"""The openai backend against real servers on 127.0.0.1: ``python -m llama_cpp.server`` with the tiny
Qwen2.5-VL GGUF + mmproj (frames) and SmolLM2 (text), plus a small stdlib HTTP server with canned
replies (a fake, named so) for headers, retries and refusals."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from engine.backends.base import BackendConfig, BackendError, ModelLoadError, OpenAIOptions
from engine.backends.openai_compat import SESSION_HEADER, OpenAIBackend
from engine.clock import VirtualClock
from engine.context import ChunkPrefix, Turn
from engine.events import EventBus
from engine.frames import Frame
from engine.log import JsonlLog
from engine.session import Session, SessionOptions
from engine.source import FrameSource
from tests.engine.fakes import ArraySource
from tests.llama_server import restart, server_available, start_llama_server
from tests.tiny_models import smollm2_gguf as smollm2_path  # noqa: E402


def _need_server() -> None:
    ok, why = server_available()
    if not ok:
        pytest.skip(why)




@pytest.fixture(scope="module")
def vlm_server(vlm_ggufs):
    _need_server()
    model, mmproj = vlm_ggufs["qwen2.5-vl"]
    server = start_llama_server(model, mmproj=mmproj, chat_format="qwen2.5-vl")
    yield server
    server.stop()


def backend(url: str, model: str, **opts) -> OpenAIBackend:
    b = OpenAIBackend()
    b.load(BackendConfig(model=model, url=url, timeout_s=20.0, seed=1,
                         openai=OpenAIOptions(backoff_s=0.05, **opts)))
    return b


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def messages_of(body: bytes) -> list[dict]:
    return json.loads(body)["messages"]


@pytest.mark.slow
def test_each_request_is_the_last_one_plus_one_turn_byte_for_byte(vlm_server, vlm_ggufs):
    b = backend(vlm_server.url, vlm_ggufs["qwen2.5-vl"][0].name)
    b.start_chunk(ChunkPrefix(system="SYS", text="[Video History]\nearlier"))
    bodies, commits = [], []
    for t, px in enumerate(frames(4)):
        b.observe(Turn(t=t, pixels=px, query="What is on screen?" if t == 1 else None))
        "".join(b.decide(6))
        bodies.append(b.last_body)
        commits.append("</silence>" if t % 2 else "</response> a noisy frame")
        b.commit(commits[-1])
    first = messages_of(bodies[0])
    assert first[0] == {"role": "system", "content": "SYS"}
    parts = first[1]["content"]
    assert parts[0]["text"].startswith("[Video History]") and parts[1]["text"] == "<0.0 seconds>"
    assert parts[2]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    for k in range(1, 4):
        prev, cur = messages_of(bodies[k - 1]), messages_of(bodies[k])
        assert len(cur) == len(prev) + 2
        assert cur[: len(prev)] == prev
        assert cur[len(prev)] == {"role": "assistant", "content": commits[k - 1]}
        # On the wire: the previous request's messages are a byte prefix of this one.
        head = json.dumps({"messages": prev}, ensure_ascii=False, separators=(",", ":"))[:-2]
        assert bodies[k].startswith(head.encode())
    assert "[User Query" in json.dumps(messages_of(bodies[1])[-1])
    # A new chunk starts a new prefix.
    b.start_chunk(ChunkPrefix(system="SYS", text="[Video History]\nnew summary"))
    b.observe(Turn(t=4, pixels=frames(1, 5)[0]))
    "".join(b.decide(4))
    assert len(messages_of(b.last_body)) == 2
    assert b.stats().tokens_context > 0


@pytest.mark.slow
def test_whole_session_against_a_real_vlm_server(vlm_server, vlm_ggufs, tmp_path):
    b = backend(vlm_server.url, vlm_ggufs["qwen2.5-vl"][0].name)
    bus, log = EventBus(), JsonlLog(tmp_path / "s.jsonl")
    bus.subscribe(log)
    src = ArraySource([(float(t), px) for t, px in enumerate(frames(4, seed=3))])
    s = Session(b, src, bus=bus, clock=VirtualClock(), options=SessionOptions(max_tokens=8))
    s.submit_query("Tell me when something changes.", at=1)
    r = s.run()
    log.close()
    events = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    decisions = [e for e in events if e["type"] == "decision"]
    assert r.error is None and [e["t"] for e in decisions] == [0, 1, 2, 3]
    assert all(e["action"] in ("silence", "response", "delegate") for e in decisions)
    assert decisions[-1]["tokens"]["context"] > decisions[0]["tokens"]["context"]
    assert len(b.messages) == 1 + 2 * 4  # system + four answered turns


class ScriptedOutageSource(FrameSource):
    """Frames 0..n-1; runs an action just before yielding the frame of a given second."""

    live = False

    def __init__(self, n: int, actions: dict[int, callable]):
        self.n, self.actions, self.label = n, actions, "outage"

    def open(self) -> None:
        pass

    def frames(self) -> Iterator[Frame]:
        for i, px in enumerate(frames(self.n, seed=4)):
            if i in self.actions:
                self.actions[i]()
            yield Frame(px, float(i), "outage", i)


@pytest.mark.slow
def test_killed_server_gives_error_events_then_recovers(tmp_path):
    _need_server()
    model = smollm2_path()
    holder = {"server": start_llama_server(model, alias="smol")}
    b = backend(holder["server"].url, "smol", images=False)

    def back_up() -> None:
        holder["server"] = restart(holder["server"])

    # The virtual clock reads one frame ahead: frame i+1 is read just before tick i runs.
    src = ScriptedOutageSource(6, {3: lambda: holder["server"].kill(), 5: back_up})
    bus, log = EventBus(), JsonlLog(tmp_path / "s.jsonl")
    bus.subscribe(log)
    s = Session(b, src, bus=bus, clock=VirtualClock(), options=SessionOptions(max_tokens=8))
    s.submit_query("Count the seconds.", at=2)  # arrives while the server is down
    try:
        r = s.run()
    finally:
        log.close()
        holder["server"].stop()
    events = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]  # every line intact
    per_tick = {}
    for e in events:
        if e["type"] in ("decision", "skipped"):
            per_tick.setdefault(e["t"], []).append(e)
    assert sorted(per_tick) == [0, 1, 2, 3, 4, 5] and all(len(v) == 1 for v in per_tick.values())
    assert [per_tick[t][0]["type"] for t in range(6)] == ["decision"] * 2 + ["skipped"] * 2 + ["decision"] * 2
    assert all(per_tick[t][0]["reason"] == "backend_error" for t in (2, 3))
    errors = [e for e in events if e["type"] == "error"]
    assert [e["t"] for e in errors] == [2, 3] and all("cannot get a reply" in e["message"] for e in errors)
    assert r.error is None and events[-1]["type"] == "session_ended"
    # The query typed during the outage reached the model once the server was back.
    user_turns = [m for m in b.messages if m["role"] == "user"]
    assert "Count the seconds." in user_turns[2]["content"]


class _Canned(BaseHTTPRequestHandler):
    """FAKE OpenAI server: replies from ``server.script`` (a list of (status, body)), records requests."""

    def do_POST(self):  # noqa: N802 - http.server API
        n = int(self.headers.get("Content-Length", 0))
        self.server.seen.append((self.headers, json.loads(self.rfile.read(n))))  # case-insensitive
        status, body = self.server.script.pop(0) if self.server.script else (200, None)
        body = body or {"choices": [{"message": {"role": "assistant", "content": "</silence>"}}],
                        "usage": {"prompt_tokens": 50, "completion_tokens": 2}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


@pytest.fixture
def canned():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    srv.seen, srv.script = [], []
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_headers_key_and_bounded_retries(canned, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    url = f"http://127.0.0.1:{canned.server_address[1]}"
    b = OpenAIBackend()
    b.load(BackendConfig(model="m", url=url, api_key_env="MY_KEY", openai=OpenAIOptions(backoff_s=0.01)))
    b.start_chunk(ChunkPrefix("S", ""))
    canned.script = [(503, {"error": "busy"}), (200, None)]
    b.observe(Turn(t=0, pixels=frames(1)[0]))
    assert "".join(b.decide()) == "</silence>"
    assert len(canned.seen) == 2  # one retry after the 503
    headers, body = canned.seen[-1]
    assert headers["Authorization"] == "Bearer sk-test" and headers[SESSION_HEADER] == b.session_id
    assert body["model"] == "m" and body["stop"] == ["\n"] and body["top_k"] == 40
    b.commit("</silence>")
    canned.seen.clear()
    canned.script = [(503, {"error": "busy"})] * 10
    b.observe(Turn(t=1, pixels=frames(1)[0]))
    with pytest.raises(BackendError, match="after 3 tries"):
        "".join(b.decide())
    assert len(canned.seen) == 3  # bounded: first try + 2 retries
    canned.seen.clear()
    canned.script = [(400, {"error": "bad image"})]
    b.observe(Turn(t=2, pixels=frames(1)[0]))
    with pytest.raises(BackendError, match="refused the request"):
        "".join(b.decide())
    assert len(canned.seen) == 1  # a 4xx is not retried


def test_configuration_errors_are_one_clear_line(monkeypatch):
    with pytest.raises(ModelLoadError, match="needs a server URL"):
        OpenAIBackend().load(BackendConfig(model="m", url=""))
    with pytest.raises(ModelLoadError, match="not an http"):
        OpenAIBackend().load(BackendConfig(model="m", url="ftp://x"))
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ModelLoadError, match="NOPE_KEY"):
        OpenAIBackend().load(BackendConfig(model="m", url="http://127.0.0.1:9", api_key_env="NOPE_KEY"))
    b = OpenAIBackend()
    b.load(BackendConfig(model="m", url="http://127.0.0.1:9/v1", timeout_s=2,
                         openai=OpenAIOptions(retries=0)))
    b.start_chunk(ChunkPrefix("S", ""))
    b.observe(Turn(t=0))
    with pytest.raises(BackendError, match="127.0.0.1:9/v1/chat/completions"):
        "".join(b.decide())
