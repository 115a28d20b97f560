"""A brain behind any OpenAI-compatible chat API (llama-server, Ollama, vLLM, a hosted service).

Images go as ``image_url`` data URLs when ``takes_images`` (the model accepts them). The API key
comes from the OS keyring or the environment variable named in the settings, never the file.
"""

from __future__ import annotations

import base64

from engine.brain import BrainError, brain_messages
from plugins.brain._http import auth_headers, post_json


class OpenAIChatBrain:
    name = "openai"

    def __init__(self, url: str, model: str = "", api_key_env: str = "", takes_images: bool = False,
                 max_tokens: int = 512, temperature: float = 0.2):
        if not url:
            raise BrainError("the openai brain needs [brain] url (e.g. http://127.0.0.1:8080/v1)")
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.takes_images = takes_images
        self.max_tokens = max_tokens
        self.temperature = temperature

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        return True, ""

    def chat(self, messages: list[dict], max_tokens: int, timeout_s: float = 120.0) -> str:
        """Plain chat completion (used by the summarizer; ``ask`` goes through it too)."""
        endpoint = self.url if self.url.endswith("/chat/completions") else self.url + "/chat/completions"
        body = {"model": self.model or "default", "messages": messages, "max_tokens": max_tokens,
                "temperature": self.temperature}
        data = post_json(endpoint, body, timeout_s, auth_headers(self.api_key_env))
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise BrainError(f"brain at {endpoint} returned an unexpected response shape") from None

    def ask(self, question: str, context: str, frames_jpeg, timeout_s: float) -> str:
        messages = brain_messages(question, context)
        if self.takes_images and frames_jpeg:
            parts = [{"type": "text", "text": messages[1]["content"]}]
            parts += [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,"
                                                          + base64.b64encode(j).decode()}} for j in frames_jpeg]
            messages[1] = {"role": "user", "content": parts}
        return self.chat(messages, self.max_tokens, timeout_s)
