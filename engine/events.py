"""The event stream (docs/architecture.md §8, schema v1): typed events, one JSON encoding, the bus.

Producers publish typed events (``bus.publish(t, DecisionMade(...))``); the bus encodes each one
once into the flat v1 JSON object every subscriber receives::

    {"v":1,"session":…,"t":12.0,"wall":ISO-8601,"type":"decision","action":…,…}

That object is what the JSONL log writes, the SQLite store indexes, the window shows and the
evaluation reads; ``decode`` turns one back into its typed event (old logs still read: unknown keys
are kept in ``extra``, missing optional ones take their defaults). Code compares event types with
:class:`EventType` members, never with string literals.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

SCHEMA_VERSION = 1
ENVELOPE = ("v", "session", "t", "wall", "type")


class EventType(StrEnum):
    SESSION_STARTED = "session_started"
    DECISION = "decision"
    SKIPPED = "skipped"
    QUERY = "query"
    UTTERANCE = "utterance"
    PARTIAL_TRANSCRIPT = "partial_transcript"
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"
    RESPONSE_DELTA = "response_delta"
    DELEGATE_STARTED = "delegate_started"
    DELEGATE_RESULT = "delegate_result"
    DELEGATE_ERROR = "delegate_error"
    SUMMARY = "summary"
    ERROR = "error"
    SESSION_ENDED = "session_ended"


EVENT_TYPES = frozenset(EventType)
PER_SECOND = frozenset({EventType.DECISION, EventType.SKIPPED})  # exactly one of these per second

Event = dict[str, Any]  # the encoded form subscribers receive
Subscriber = Callable[[Event], None]


@dataclass(frozen=True)
class SessionStarted:
    TYPE: ClassVar[EventType] = EventType.SESSION_STARTED
    source: str = ""
    backend: str = ""
    mode: str = ""
    max_pixels: int = 0
    virtual_clock: bool = False


@dataclass(frozen=True)
class DecisionMade:
    """One second's decision. ``delegate_query`` only for delegate, ``suppressed`` when the talk
    settings turned a reply into silence, ``change`` when there was a frame."""

    TYPE: ClassVar[EventType] = EventType.DECISION
    action: str = "silence"
    text: str = ""
    latency_ms: dict = field(default_factory=dict)  # {capture, prefill, decide, total}
    tokens: dict = field(default_factory=dict)  # {context, new}
    kv_bytes: dict = field(default_factory=dict)  # {fast, offload, used}: capacity per tier, and what holds tokens
    delegate_query: str | None = None
    suppressed: str | None = None
    change: float | None = None


@dataclass(frozen=True)
class Skipped:
    TYPE: ClassVar[EventType] = EventType.SKIPPED
    reason: str = ""  # busy | no_frame | backend_error | paused


@dataclass(frozen=True)
class QueryReceived:
    TYPE: ClassVar[EventType] = EventType.QUERY
    text: str = ""
    source: str = ""  # typed | voice | cli


@dataclass(frozen=True)
class Utterance:
    TYPE: ClassVar[EventType] = EventType.UTTERANCE
    text: str = ""
    started_t: float = 0.0


@dataclass(frozen=True)
class PartialTranscript:
    TYPE: ClassVar[EventType] = EventType.PARTIAL_TRANSCRIPT
    text: str = ""


@dataclass(frozen=True)
class SpeechStarted:
    TYPE: ClassVar[EventType] = EventType.SPEECH_STARTED
    utterance: str = ""
    text: str = ""
    decision_t: float = 0.0
    first_audio_ms: float | None = None


@dataclass(frozen=True)
class SpeechEnded:
    TYPE: ClassVar[EventType] = EventType.SPEECH_ENDED
    utterance: str = ""
    interrupted: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ResponseDelta:
    TYPE: ClassVar[EventType] = EventType.RESPONSE_DELTA
    text: str = ""


@dataclass(frozen=True)
class DelegateStarted:
    TYPE: ClassVar[EventType] = EventType.DELEGATE_STARTED
    task_id: str = ""
    query: str = ""
    note: str = ""
    frames: int = 0
    brain: str = ""


@dataclass(frozen=True)
class DelegateResult:
    """``text`` is the digest folded back into the model's context (``result`` repeats it for v1
    readers); ``lam``/``answer_tokens`` are set by brains that report them (DAMI)."""

    TYPE: ClassVar[EventType] = EventType.DELEGATE_RESULT
    task_id: str = ""
    query: str = ""
    text: str = ""
    result: str = ""
    latency_ms: float | None = None
    lam: float | None = None
    answer_tokens: int | None = None


@dataclass(frozen=True)
class DelegateError:
    TYPE: ClassVar[EventType] = EventType.DELEGATE_ERROR
    task_id: str = ""
    query: str = ""
    message: str = ""
    latency_ms: float | None = None


@dataclass(frozen=True)
class Summary:
    TYPE: ClassVar[EventType] = EventType.SUMMARY
    kind: str = "mid"  # mid | long
    summary: str = ""
    start_t: int = 0
    end_t: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True)
class ErrorRaised:
    TYPE: ClassVar[EventType] = EventType.ERROR
    where: str = ""  # source | backend | tts | asr | brain | summarizer | …
    message: str = ""


@dataclass(frozen=True)
class SessionEnded:
    TYPE: ClassVar[EventType] = EventType.SESSION_ENDED
    ticks: int = 0
    decisions: int = 0
    responses: int = 0
    skipped: int = 0
    error: str | None = None
    frames_dropped: int = 0


TypedEvent = (SessionStarted | DecisionMade | Skipped | QueryReceived | Utterance | PartialTranscript | SpeechStarted
              | SpeechEnded | ResponseDelta | DelegateStarted | DelegateResult | DelegateError | Summary | ErrorRaised
              | SessionEnded)
CLASSES: dict[EventType, type] = {cls.TYPE: cls for cls in TypedEvent.__args__}
# Fields written even when None: readers of v1 logs expect them (``session_ended.error``).
_ALWAYS = {EventType.SESSION_ENDED: {"error"}, EventType.SPEECH_STARTED: {"first_audio_ms"}}


def new_session_id() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def encode(session: str, t: float, event: TypedEvent, extra: dict | None = None) -> Event:
    """The one JSON encoding: envelope, then the event's fields (None-valued optional fields left out)."""
    kind = event.TYPE
    keep = _ALWAYS.get(kind, set())
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    body = {k: v for k, v in fields.items() if v is not None or k in keep}
    wall = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
    return {"v": SCHEMA_VERSION, "session": session, "t": round(float(t), 3), "wall": wall, "type": kind.value,
            **body, **(extra or {})}


@dataclass(frozen=True)
class Decoded:
    """A recorded event read back: its envelope, its typed event, and any keys the type does not know."""

    session: str
    t: float
    wall: str
    event: TypedEvent
    extra: dict


def decode(obj: Event) -> Decoded:
    """The typed event of an encoded one. Raises ValueError for an unknown type."""
    kind = EventType(obj["type"])
    cls = CLASSES[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in obj.items() if k in names}
    extra = {k: v for k, v in obj.items() if k not in names and k not in ENVELOPE}
    return Decoded(str(obj.get("session", "")), float(obj.get("t", 0.0)), str(obj.get("wall", "")), cls(**known), extra)


class EventBus:
    """Encodes each published event once and hands it to every subscriber, in order.

    A subscriber that raises is kept out of the way of the others (the log must never lose a line
    because the UI broke) and its error is recorded in ``subscriber_errors``.
    """

    def __init__(self, session: str | None = None):
        self.session = session or new_session_id()
        self._subs: list[Subscriber] = []
        self._lock = threading.Lock()
        self.subscriber_errors: list[str] = []

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subs.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._subs:
                    self._subs.remove(fn)

        return unsubscribe

    def publish(self, t: float, event: TypedEvent, **extra: Any) -> Event:
        """Encode ``event`` at stream time ``t`` and deliver it; ``extra`` adds keys a type does not
        declare (kept by ``decode`` in ``extra``)."""
        encoded = encode(self.session, t, event, extra)
        with self._lock:
            subs = list(self._subs)
        for fn in subs:
            try:
                fn(encoded)
            except Exception as exc:  # noqa: BLE001 - one broken subscriber must not stop the others
                self.subscriber_errors.append(f"{getattr(fn, '__qualname__', fn)}: {exc}")
        return encoded

    def emit(self, t: float, type_: str | EventType, **fields: Any) -> Event:
        """Publish by type name and fields (for callers outside the engine that build events from
        data, e.g. replaying a log): the fields are checked against the typed event."""
        cls = CLASSES[EventType(type_)]
        names = {f.name for f in dataclasses.fields(cls)}
        return self.publish(t, cls(**{k: v for k, v in fields.items() if k in names}),
                            **{k: v for k, v in fields.items() if k not in names})


def make_event(session: str, t: float, type_: str | EventType, **fields: Any) -> Event:
    """An encoded event without a bus (tests and fakes)."""
    cls = CLASSES[EventType(type_)]
    names = {f.name for f in dataclasses.fields(cls)}
    return encode(session, t, cls(**{k: v for k, v in fields.items() if k in names}),
                  {k: v for k, v in fields.items() if k not in names})
