"""Parse a ``--source`` string into a capture plugin (DESIGN §8).

    screen[:N]      monitor N (1 = primary)         webcam[:N]   camera index N (default 0)
    window:TITLE    one window, by title            rtsp://… http(s)://…   network stream
    anything else   a video file path
"""

from __future__ import annotations

from app import registry
from engine.source import FrameSource, SourceError


def parse_source(spec: str, fps: float = 2.0, exclude=None) -> FrameSource:
    """``exclude``: a callable returning screen rectangles to mask out of screen captures (the app's own
    window)."""
    spec = spec.strip()
    if not spec:
        raise SourceError("empty --source")
    kind, _, arg = spec.partition(":")
    try:
        if kind == "screen":
            return registry.get("presence.capture", "screen")(monitor=int(arg or 1), fps=fps, exclude=exclude)
        if kind == "webcam":
            return registry.get("presence.capture", "webcam")(index=int(arg or 0), fps=fps)
        if kind == "window":
            if not arg:
                raise SourceError("window source needs a title: window:TITLE")
            return registry.get("presence.capture", "window")(title=arg, fps=fps, exclude=exclude)
        if kind in ("rtsp", "http", "https"):
            return registry.get("presence.capture", "stream")(url=spec, fps=fps)
        return registry.get("presence.capture", "file")(path=spec)
    except registry.PluginUnavailable as exc:
        raise SourceError(str(exc)) from None
    except ValueError:
        raise SourceError(f"bad source {spec!r}: expected screen[:N], webcam[:N], window:TITLE, a URL or a file") from None
