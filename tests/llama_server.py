"""Start a real ``python -m llama_cpp.server`` on 127.0.0.1 for tests (reusable helpers).

    with start_llama_server(smollm2_path) as server:      # or: server = start_llama_server(...); server.stop()
        urllib.request.urlopen(server.url + "/v1/models")

The server is a real OpenAI-compatible process (llama-cpp-python's ``[server]`` extra) on a free
loopback port; ``start_llama_server`` returns only once ``/v1/models`` answers (bounded wait), and
raises ``RuntimeError`` with the tail of the server's log when it dies or never becomes ready.
Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_available() -> tuple[bool, str]:
    """(True, "") when ``llama_cpp.server`` can be imported by this interpreter, else (False, why)."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except Exception as exc:  # ImportError, or a missing fastapi/uvicorn/sse-starlette
        return False, f"llama-cpp-python[server] not importable: {exc}"
    return True, ""


@dataclass
class LlamaServer:
    """A running server. ``url`` is the base (``http://127.0.0.1:PORT``); ``/v1`` is appended by clients."""

    proc: subprocess.Popen
    port: int
    args: list[str]
    log_path: Path
    _log_file: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after ``timeout``). Idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """Kill abruptly (SIGKILL): what a crashed or unplugged server looks like to a client."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_ready(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> bool:
    """Poll ``url/v1/models`` until it answers 200 or ``timeout`` passes (or ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2.0) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError, ConnectionError):
            pass
        time.sleep(0.2)
    return False


def start_llama_server(
    model: str | os.PathLike,
    port: int | None = None,
    mmproj: str | os.PathLike | None = None,
    chat_format: str | None = None,
    n_ctx: int = 4096,
    n_threads: int = 1,  # one thread: on a busy shared CI box, two spinning ggml threads are far slower
    timeout: float = 90.0,
    extra_args: list[str] | None = None,
    alias: str | None = None,
) -> LlamaServer:
    """Start ``python -m llama_cpp.server`` for ``model`` on 127.0.0.1 and wait until it serves.

    mmproj: the multimodal projector (``--clip_model_path``); give ``chat_format`` with it
    (``qwen2.5-vl`` for Qwen-VL GGUFs, ``mtmd`` to use the GGUF's own template).
    alias: the model name clients send (default: the file name).
    """
    port = port or free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads),
            "--model_alias", alias or Path(model).name]
    if mmproj:
        args += ["--clip_model_path", str(mmproj)]
    if chat_format:
        args += ["--chat_format", chat_format]
    args += list(extra_args or [])
    fd, log_name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
    os.close(fd)
    log_file = open(log_name, "w")  # noqa: SIM115 - closed by LlamaServer.stop
    proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    server = LlamaServer(proc=proc, port=port, args=args, log_path=Path(log_name), _log_file=log_file)
    if not wait_ready(server.url, timeout=timeout, proc=proc):
        tail = server.log_tail()
        server.stop()
        raise RuntimeError(f"llama_cpp.server did not become ready on {server.url} within {timeout:.0f}s:\n{tail}")
    return server


def restart(server: LlamaServer, timeout: float = 90.0) -> LlamaServer:
    """Start the same server again on the same port (after ``stop``/``kill``)."""
    server.stop()
    log_file = open(server.log_path, "a")  # noqa: SIM115
    proc = subprocess.Popen(server.args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    new = LlamaServer(proc=proc, port=server.port, args=server.args, log_path=server.log_path, _log_file=log_file)
    if not wait_ready(new.url, timeout=timeout, proc=proc):
        tail = new.log_tail()
        new.stop()
        raise RuntimeError(f"llama_cpp.server did not come back on {new.url}:\n{tail}")
    return new
