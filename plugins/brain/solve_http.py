"""An external agent over HTTP with the reference system's ``POST /v1/solve`` schema
(seed_systems §1.5): ``{session_id, task_id, question, foreground_text, max_subagents,
timeout_seconds, frames:[{image_url, timestamp, timestamp_kind, pts}]}``. Only the answer text is
used; nothing in it is executed.
"""

from __future__ import annotations

import base64
import uuid

from engine.brain import BrainError
from plugins.brain._http import auth_headers, post_json


class SolveHTTPBrain:
    name = "solve"
    takes_images = True

    def __init__(self, url: str, session_id: str = "presence", api_key_env: str = "", max_subagents: int = 6):
        if not url:
            raise BrainError("the solve brain needs [brain] url (e.g. http://127.0.0.1:8090)")
        self.url = url.rstrip("/")
        self.session_id = session_id
        self.api_key_env = api_key_env
        self.max_subagents = max_subagents

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    def ask(self, question: str, context: str, frames_jpeg, timeout_s: float) -> str:
        frames = [{"image_url": "data:image/jpeg;base64," + base64.b64encode(j).decode(), "timestamp": float(i),
                   "timestamp_kind": "index", "pts": i} for i, j in enumerate(frames_jpeg or [])]
        body = {"session_id": self.session_id, "task_id": uuid.uuid4().hex, "question": question,
                "foreground_text": context, "max_subagents": self.max_subagents,
                "timeout_seconds": int(timeout_s), "frames": frames}
        data = post_json(self.url + "/v1/solve", body, timeout_s, auth_headers(self.api_key_env))
        for k in ("summary_text", "text", "answer", "result"):
            if isinstance(data.get(k), str) and data[k].strip():
                return data[k]
        raise BrainError(f"agent at {self.url} returned no answer text")
