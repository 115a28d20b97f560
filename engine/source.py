"""What the session needs from a capture plugin (the plugins themselves live in ``plugins/capture``).

A source yields :class:`Frame` objects whose ``t`` is *stream time*: the video's presentation time
for files, seconds since ``open`` for live sources. Live sources are paced by the world; a file is
paced by the session (real time, or the virtual clock with ``--fast``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from engine.frames import Frame


class SourceError(RuntimeError):
    """The source cannot be opened or failed while reading. Carries one readable line."""


class FrameSource(ABC):
    #: True for screens, cameras and network streams (frames arrive in real time by themselves).
    live: bool = True
    label: str = ""

    @classmethod
    def is_available(cls) -> tuple[bool, str]:
        """(available, install hint) — e.g. (False, "install presence[capture] for screen capture")."""
        return True, ""

    @abstractmethod
    def open(self) -> None:
        """Open the source; raise SourceError with a readable message when it cannot be opened."""

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames in capture order until the source ends (files) or ``close`` (live).
        Raise SourceError when the source fails partway."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def pause(self) -> None:  # noqa: B027 - optional hook
        """Stop reading until ``resume``: a paused live source grabs nothing (the privacy pause), a file
        holds its place."""

    def resume(self) -> None:  # noqa: B027 - optional hook
        pass


def redact_url(spec: str) -> str:
    """``spec`` with any password in a URL's user part replaced by ``***`` (labels, logs and stores
    never hold credentials): ``rtsp://cam:secret@host/x`` → ``rtsp://cam:***@host/x``."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in spec or "@" not in spec:
        return spec
    parts = urlsplit(spec)
    if parts.password is None and "@" not in parts.netloc:
        return spec
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

