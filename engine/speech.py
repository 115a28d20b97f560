"""Speaking and turn-taking (DESIGN §2 "Speaker"): decisions → utterances, barge-in → silence.

Qt-free and audio-library-free: the TTS engine and the microphone are plugins that meet this module
through two small protocols, so every rule here runs in tests with fakes and a virtual clock.

    bus: decision(response|delegate) ──▶ Speaker.say(text) ──▶ UtteranceHandle ──▶ worker ──▶ tts.speak(h)
                                          │ overlap policy while one plays:          │ first sample out →
                                          │   text_only (default): shown, not spoken │   speech_started
                                          │   queue: spoken after the current one    │ done/interrupted →
                                          │   newest_wins: interrupt, speak the new  │   speech_ended
    ASR: user speech starts ──▶ TurnTaker ──▶ Speaker.barge_in(): epoch += 1, current interrupted,
                                              queue cleared; audio and decisions of an older epoch
                                              never reach the speaker again (the epoch fence).
         final transcript    ──▶ TurnTaker ──▶ `utterance` event, submit_query(text, "voice"),
                                              Speaker.fence(now): responses decided before the user's
                                              turn ended answer the old question and stay text-only.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.events import (
    ErrorRaised,
    Event,
    EventBus,
    EventType,
    PartialTranscript,
    SpeechEnded,
    SpeechStarted,
    Utterance,
)

OVERLAP_POLICIES = ("text_only", "queue", "newest_wins")
ECHO_MODES = ("gate", "aec", "off")


class TTSEngine(Protocol):
    """What the Speaker needs from a TTS plugin."""

    name: str

    def speak(self, handle: UtteranceHandle) -> None:
        """Synthesize and play ``handle.text``; block until it has played or ``handle`` is
        interrupted. Call ``handle.mark_first_audio()`` when the first sample reaches the device and
        check ``handle.should_play()`` before every block written."""

    def close(self) -> None: ...


def spoken_digest(text: str, limit: int = 300) -> str:
    """The first sentences of a brain's digest, at most ``limit`` characters (cut at a sentence)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = max(text.rfind(p, 0, limit) for p in (". ", "! ", "? "))
    return text[: cut + 1] if cut > 0 else text[:limit].rsplit(" ", 1)[0] + "…"


@dataclass
class SpeakerOptions:
    """overlap: what a new response does while another utterance plays (``text_only`` is the
    reference system's rule: the new one is shown only). speak_delegate: speak the holding note of a
    delegate decision. max_queue: bound on waiting utterances in ``queue`` mode (oldest dropped)."""

    overlap: str = "text_only"
    speak_delegate: bool = True
    max_queue: int = 4

    def __post_init__(self) -> None:
        if self.overlap not in OVERLAP_POLICIES:
            raise ValueError(f"overlap must be one of {', '.join(OVERLAP_POLICIES)}, got {self.overlap!r}")


class UtteranceHandle:
    """One spoken utterance. ``interrupt()`` stops it within one audio block; ``wait()`` blocks until
    it finished or was interrupted. State: pending → playing → done | interrupted | stale."""

    _ids = itertools.count(1)

    def __init__(self, text: str, epoch: int, decision_t: float, epoch_now: Callable[[], int]):
        self.id = next(self._ids)
        self.text = text
        self.epoch = epoch
        self.decision_t = decision_t
        self.state = "pending"
        self.created_wall = time.perf_counter()
        self.first_audio_wall: float | None = None
        self.error: str = ""
        self._epoch_now = epoch_now
        self._interrupted = threading.Event()
        self._done = threading.Event()
        self._on_first_audio: list[Callable[[UtteranceHandle], None]] = []
        self._on_interrupt: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def should_play(self) -> bool:
        """False once interrupted or once a barge-in moved the epoch past this utterance's."""
        return not self._interrupted.is_set() and self.epoch == self._epoch_now()

    def interrupt(self) -> None:
        with self._lock:
            if self._interrupted.is_set() or self._done.is_set():
                return
            self._interrupted.set()
            callbacks = list(self._on_interrupt)
        for cb in callbacks:  # e.g. abort the output stream so the device stops now, not at block end
            cb()

    def on_interrupt(self, cb: Callable[[], None]) -> None:
        """Register a stop hook (a TTS plugin aborts its output stream here)."""
        with self._lock:
            self._on_interrupt.append(cb)
            fire = self._interrupted.is_set()
        if fire:
            cb()

    def mark_first_audio(self) -> None:
        with self._lock:
            if self.first_audio_wall is not None:
                return
            self.first_audio_wall = time.perf_counter()
            callbacks = list(self._on_first_audio)
        for cb in callbacks:
            cb(self)

    @property
    def first_audio_ms(self) -> float | None:
        """Wall time from the handle's creation (the decision) to the first sample played."""
        if self.first_audio_wall is None:
            return None
        return (self.first_audio_wall - self.created_wall) * 1000

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _finish(self, state: str) -> None:
        self.state = state
        self._done.set()


class Speaker:
    """Speaks response/delegate decisions through a TTS engine, one utterance at a time.

    ``now`` gives the session's stream time (``speech_*`` events carry it). Thread-safe: the bus may
    call ``on_event`` from the engine thread while the ASR thread calls ``barge_in``.
    """

    def __init__(self, tts: TTSEngine, bus: EventBus, now: Callable[[], float],
                 options: SpeakerOptions | None = None):
        self.tts = tts
        self.bus = bus
        self.now = now
        self.options = options or SpeakerOptions()
        self.epoch = 0
        self.fence_tick = -(10**9)  # decisions of ticks before this answer an older question
        self.current: UtteranceHandle | None = None
        self.handles: list[UtteranceHandle] = []  # every utterance created, for tests and the UI
        self.shown_only = 0  # responses shown as text only (overlap, stale, or user speaking)
        self.failed: str = ""  # set when the TTS engine failed for good (voice off, text goes on)
        self.user_speaking = False
        self._queue: list[UtteranceHandle] = []
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self._unsubscribe: Callable[[], None] | None = None
        self._worker = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._worker.start()

    # --- inputs ---------------------------------------------------------------------------------
    def attach(self) -> Speaker:
        """Subscribe to the bus: every response/delegate decision becomes a ``say``."""
        self._unsubscribe = self.bus.subscribe(self.on_event)
        return self

    def on_event(self, event: Event) -> None:
        if event.get("type") == EventType.DELEGATE_RESULT and self.options.speak_delegate:
            # The brain's digest is spoken once it is back (bounded: the first sentences only; the
            # whole digest is shown in the transcript and folded into the model's context).
            spoken = spoken_digest(event.get("text") or "")
            if spoken:
                self.say(spoken, decision_t=float(event.get("t", self.now())))
            return
        if event.get("type") != EventType.DECISION:
            return
        action, text = event.get("action"), (event.get("text") or "").strip()
        if action == "response" or (action == "delegate" and self.options.speak_delegate):
            if text:
                self.say(text, decision_t=float(event.get("t", self.now())))

    @property
    def speaking(self) -> bool:
        with self._lock:
            return self.current is not None or bool(self._queue)

    def say(self, text: str, decision_t: float | None = None) -> UtteranceHandle | None:
        """Queue ``text`` for speech under the overlap policy; None when it is shown only."""
        decision_t = self.now() if decision_t is None else decision_t
        with self._lock:
            if self._closed or self.failed:
                return None
            # A response decided before the user's last turn ended answers the previous question.
            if decision_t < self.fence_tick or self.user_speaking:
                self.shown_only += 1
                return None
            busy = self.current is not None or bool(self._queue)
            policy = self.options.overlap
            if busy and policy == "text_only":
                self.shown_only += 1
                return None
            if busy and policy == "newest_wins":
                self._interrupt_all_locked()
            handle = UtteranceHandle(text, self.epoch, decision_t, lambda: self.epoch)
            handle._on_first_audio.append(self._started)
            self.handles.append(handle)
            self._queue.append(handle)
            while len(self._queue) > self.options.max_queue:
                self._queue.pop(0)._finish("dropped")
            self._wake.notify()
            return handle

    def barge_in(self) -> int:
        """The user started speaking: stop playback now and fence out everything queued."""
        with self._lock:
            self.epoch += 1
            self._interrupt_all_locked()
            return self.epoch

    def fence(self, t: float) -> None:
        """The user's turn ended at stream time ``t``: decisions of earlier ticks are stale."""
        with self._lock:
            self.fence_tick = max(self.fence_tick, math.floor(t))
            self.epoch += 1
            self._interrupt_all_locked()

    def _interrupt_all_locked(self) -> None:
        for h in self._queue:
            h._finish("stale")
        self._queue.clear()
        if self.current is not None:
            self.current.interrupt()

    # --- the worker -------------------------------------------------------------------------------
    def _started(self, handle: UtteranceHandle) -> None:
        ms = handle.first_audio_ms
        self.bus.publish(self.now(), SpeechStarted(utterance=handle.id, text=handle.text, decision_t=handle.decision_t,
                                                   first_audio_ms=round(ms, 1) if ms is not None else None))

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                handle = self._queue.pop(0)
                if not handle.should_play():  # the epoch fence: stale before it ever played
                    handle._finish("stale")
                    continue
                self.current = handle
                handle.state = "playing"
            try:
                self.tts.speak(handle)
                state = "interrupted" if handle.interrupted or not handle.should_play() else "done"
            except Exception as exc:  # noqa: BLE001 - a broken voice turns speech off, never the session
                handle.error = str(exc) or type(exc).__name__
                state = "failed"
                with self._lock:
                    self.failed = handle.error
                self.bus.publish(self.now(), ErrorRaised(where="tts", message=f"voice off: {handle.error}"))
            with self._lock:
                self.current = None
            if handle.first_audio_wall is not None:
                self.bus.publish(self.now(), SpeechEnded(utterance=handle.id, interrupted=state != "done",
                                                         reason=state))
            handle._finish(state)

    def close(self) -> None:
        """Stop speaking now (Speak switched off): the utterance playing is interrupted — its audio
        stops within one block — the queue is dropped, the worker ends and the TTS is closed (Piper
        closes its output stream; a later ``speak`` on it reopens one). Idempotent."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        with self._lock:
            self._closed = True
            self.epoch += 1  # the fence: no utterance of before the close plays a block more
            self._interrupt_all_locked()
            self._wake.notify_all()
        self._worker.join(timeout=5.0)
        try:
            self.tts.close()
        except Exception:  # noqa: BLE001 - best effort on shutdown
            pass


class Listener(Protocol):
    """What an ASR plugin reports to (TurnTaker implements it)."""

    def on_speech_start(self) -> None: ...

    def on_speech_end(self) -> None: ...

    def on_partial(self, text: str) -> None: ...

    def on_utterance(self, text: str) -> None: ...

    def on_error(self, message: str) -> None: ...


@dataclass
class TurnOptions:
    """barge_in: the user's speech interrupts playback. echo: how the mic ignores the app's voice —
    ``gate`` (default, safe on open speakers): mic audio is dropped while the app speaks and for
    ``gate_tail_s`` after, so only push-to-talk (or the UI's stop) barges in; ``aec``: the ASR
    cancels the app's voice out of the mic (WebRTC AEC3), the mic stays live; ``off`` (headphones):
    the mic stays live and the user's speech start interrupts playback."""

    barge_in: bool = True
    echo: str = "gate"
    gate_tail_s: float = 0.3

    def __post_init__(self) -> None:
        if self.echo not in ECHO_MODES:
            raise ValueError(f"echo must be one of {', '.join(ECHO_MODES)}, got {self.echo!r}")


@dataclass
class TurnStats:
    barge_ins: int = 0
    utterances: int = 0
    partials: int = 0
    errors: list[str] = field(default_factory=list)


class TurnTaker:
    """Connects an ASR plugin to the session and the Speaker: barge-in, mic gating, transcripts."""

    def __init__(self, bus: EventBus, now: Callable[[], float], submit: Callable[..., None],
                 speaker: Speaker | None = None, options: TurnOptions | None = None):
        self.bus = bus
        self.now = now
        self.submit = submit
        self.speaker = speaker
        self.options = options or TurnOptions()
        self.stats = TurnStats()
        self._last_speech_wall = -math.inf
        self._speech_started_t: float | None = None

    def mic_gated(self) -> bool:
        """True while the mic should be ignored: the app is speaking (or just stopped) in gate mode."""
        if self.options.echo != "gate" or self.speaker is None:
            return False
        if self.speaker.speaking:
            self._last_speech_wall = time.monotonic()
            return True
        return time.monotonic() - self._last_speech_wall < self.options.gate_tail_s

    def on_speech_start(self) -> None:
        self._speech_started_t = self.now()
        if self.speaker is None:
            return
        with self.speaker._lock:
            self.speaker.user_speaking = True
        if self.options.barge_in and self.speaker.speaking:
            self.stats.barge_ins += 1
            self.speaker.barge_in()

    def on_speech_end(self) -> None:
        if self.speaker is not None:
            with self.speaker._lock:
                self.speaker.user_speaking = False

    def on_partial(self, text: str) -> None:
        if text.strip():
            self.stats.partials += 1
            self.bus.publish(self.now(), PartialTranscript(text=text.strip()))

    def on_utterance(self, text: str) -> None:
        text = text.strip()
        self.on_speech_end()
        if not text:
            return
        t = self.now()
        self.stats.utterances += 1
        started = self._speech_started_t if self._speech_started_t is not None else t
        self.bus.publish(t, Utterance(text=text, started_t=round(started, 3)))
        if self.speaker is not None:
            self.speaker.fence(t)
        self.submit(text, source="voice")
        self._speech_started_t = None

    def on_error(self, message: str) -> None:
        self.stats.errors.append(message)
        self.bus.publish(self.now(), ErrorRaised(where="asr", message=message))
