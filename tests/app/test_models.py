"""The model manager against a REAL HTTP server on loopback that serves a small repository the way the
Hugging Face hub does (model-info API, ``resolve/`` downloads with ETag, Content-Length and Range).

huggingface_hub is pointed at it with its ``endpoint`` setting; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.network

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubRepo:
    def __init__(self, repo_id: str, files: dict[str, bytes]):
        self.repo_id = repo_id
        self.files = files

    def etag(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


class HubServer:
    """A minimal hub: GET /api/models/<repo>[/revision/<rev>], HEAD/GET /<repo>/resolve/<rev>/<file>.

    ``throttle_s`` sleeps between 64 KB blocks so a test can cancel mid-file; every request is logged
    with its Range header, so a test can see a resume ask for the rest only."""

    def __init__(self, repos: list[HubRepo], throttle_s: float = 0.0):
        self.repos = {r.repo_id: r for r in repos}
        self.throttle_s = throttle_s
        self.log: list[tuple[str, str, str]] = []  # (method, path, Range header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep pytest output clean
                pass

            def _not_found(self, code: str) -> None:
                body = json.dumps({"error": code}).encode()
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _api(self, repo_id: str) -> None:
                repo = server.repos.get(repo_id)
                if repo is None:
                    return self._not_found("RepoNotFound")
                body = json.dumps({
                    "id": repo_id, "modelId": repo_id, "sha": COMMIT, "private": False,
                    "siblings": [{"rfilename": n, "size": len(b), "blobId": repo.etag(n)[:40]}
                                 for n, b in repo.files.items()],
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _resolve(self, repo_id: str, name: str) -> None:
                repo = server.repos.get(repo_id)
                if repo is None:
                    return self._not_found("RepoNotFound")
                if name not in repo.files:
                    return self._not_found("EntryNotFound")
                data = repo.files[name]
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
                if m:
                    start = int(m.group(1))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{repo.etag(name)}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.command == "HEAD":
                    return
                for i in range(start, len(data), 65536):
                    try:
                        self.wfile.write(data[i:i + 65536])
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if server.throttle_s:
                        time.sleep(server.throttle_s)

            def _route(self) -> None:
                path = self.path.split("?")[0]
                server.log.append((self.command, path, self.headers.get("Range", "")))
                m = re.match(r"^/api/models/([^/]+/[^/]+?)(?:/revision/[^/]+)?$", path)
                if m:
                    return self._api(m.group(1))
                m = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", path)
                if m:
                    return self._resolve(m.group(1), m.group(2))
                return self._not_found("NotFound")

            do_GET = do_HEAD = _route

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


WEIGHTS = os.urandom(1024 * 1024)  # 1 MB of "weights": 16 blocks of 64 KB
REPO = HubRepo("tiny-org/tiny-vl", {"config.json": b'{"model_type": "qwen2_5_vl"}', "model.safetensors": WEIGHTS,
                                    "README.md": b"# tiny\n"})


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The suite runs with HF_HUB_OFFLINE=1; these tests talk to loopback only, so switch it off here."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 65536)  # progress/cancel granularity for a 1 MB file
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    return tmp_path / "hub-cache"


def test_pull_downloads_into_cache_with_progress_and_lists_it(online):
    from app.models import ModelStore

    with HubServer([REPO]) as hub:
        store = ModelStore(cache_dir=online, endpoint=hub.url)
        assert not store.entry(REPO.repo_id).installed
        seen = []
        path = store.pull(REPO.repo_id, on_progress=seen.append)
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    assert (path / "config.json").read_bytes() == REPO.files["config.json"]
    assert seen[-1].done == seen[-1].total == sum(len(b) for b in REPO.files.values())
    assert seen[-1].files_done == 3
    assert all(b.done <= b.total for b in seen)
    e = store.entry(REPO.repo_id)
    assert e.installed and e.partial_bytes == 0
    assert e.size_on_disk >= len(WEIGHTS)
    assert REPO.repo_id in [x.repo_id for x in store.list()]
    assert store.disk_usage() >= len(WEIGHTS)


def test_cancel_leaves_partial_then_resume_asks_for_the_rest_with_range(online):
    from app.models import Cancelled, ModelStore

    with HubServer([REPO], throttle_s=0.01) as hub:
        store = ModelStore(cache_dir=online, endpoint=hub.url)
        cancel = threading.Event()

        def progress(p):
            if p.file == "model.safetensors" and p.done > 300_000:
                cancel.set()

        with pytest.raises(Cancelled):
            store.pull(REPO.repo_id, on_progress=progress, cancel=cancel, allow=("*.safetensors",))
        e = store.entry(REPO.repo_id)
        assert not e.installed
        assert 0 < e.partial_bytes < len(WEIGHTS)
        partial = e.partial_bytes
        hub.log.clear()
        path = store.pull(REPO.repo_id, allow=("*.safetensors",))
        ranges = [r for (m, p, r) in hub.log if m == "GET" and p.endswith("model.safetensors")]
    assert ranges == [f"bytes={partial}-"], ranges  # only the missing tail travelled
    assert (path / "model.safetensors").read_bytes() == WEIGHTS
    assert store.entry(REPO.repo_id).installed


def test_remove_frees_the_cache(online):
    from app.models import ModelError, ModelStore

    with HubServer([REPO]) as hub:
        store = ModelStore(cache_dir=online, endpoint=hub.url)
        store.pull(REPO.repo_id)
    freed = store.remove(REPO.repo_id)
    assert freed >= len(WEIGHTS)
    assert not store.entry(REPO.repo_id).installed
    with pytest.raises(ModelError, match="not in the cache"):
        store.remove(REPO.repo_id)


def test_unknown_repo_is_one_readable_error(online):
    from app.models import ModelError, ModelStore

    with HubServer([REPO]) as hub:
        store = ModelStore(cache_dir=online, endpoint=hub.url)
        with pytest.raises(ModelError, match="not found"):
            store.pull("nobody/nothing")


def test_offline_mode_refuses_to_pull(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from app.models import ModelError, ModelStore

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="offline"):
        ModelStore(cache_dir=tmp_path, endpoint="http://127.0.0.1:9").pull(REPO.repo_id)


def test_listing_and_vram_estimate_need_no_network(tmp_path):
    from app.models import PRESETS, ModelStore, estimate_vram, find_preset

    keys = {p.key for p in PRESETS}
    assert {"joyai-gguf", "qwen2.5-vl-3b", "qwen3-vl-8b", "smollm2-lite"} <= keys
    rows = ModelStore(cache_dir=tmp_path).list()
    assert [r.repo_id for r in rows] == [p.repo_id for p in PRESETS]
    p = find_preset("qwen3-vl-8b")
    full, q4 = estimate_vram(p, "none", "full", 32768), estimate_vram(p, "4bit", "quantized", 32768)
    assert q4.total < full.total
    # Qwen3-VL-8B: 2 · 36 layers · 8 KV heads · 128 · 32768 tokens · 2 bytes = 4.5 GiB of f16 KV
    assert full.kv == 2 * 36 * 8 * 128 * 32768 * 2


def test_cli_models_pull_list_rm(online, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("HF_HUB_CACHE", str(online))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(online))
    with HubServer([REPO]) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert main(["models", "pull", REPO.repo_id, "--quiet"]) == 0
        assert main(["models", "list"]) == 0
        out = capsys.readouterr().out
        assert REPO.repo_id in out and "installed" in out
        assert main(["models", "pull", "nobody/nothing", "--quiet"]) == 4
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not found" in err
    assert main(["models", "rm", REPO.repo_id]) == 0
    assert "freed" in capsys.readouterr().out
    assert main(["models", "rm", REPO.repo_id]) == 4
