"""Voice for one session: speech out (a Speaker on the bus) and in (an ASR feeding the session).

Both halves can be switched on and off while the session runs (the desktop app's Speak / Listen
toggles; ``presence run --speak/--listen``). Never fatal: a failure (no PortAudio, no device, a
missing voice or model) is ONE line through ``report`` and the session runs on with text — which is
always shown and logged. A device that vanishes mid-session is reported the same way, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from app.config import VoiceSettings
from engine.events import Event, EventBus, EventType
from engine.speech import Speaker, SpeakerOptions, TurnOptions, TurnTaker
from plugins.audio import describe


def make_tts(v: VoiceSettings, on_played=None):
    if v.tts == "silent":
        from plugins.tts.fake import SilentTTS

        return SilentTTS()
    from plugins.tts.piper import PiperTTS

    ok, hint = PiperTTS.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    return PiperTTS(voice=v.voice, output_device=v.output_device, on_played=on_played)


def make_asr(v: VoiceSettings, gate, preprocess=None):
    from plugins.asr.vad import CutterOptions
    from plugins.asr.whisper import WhisperASR, WhisperOptions

    ok, hint = WhisperASR.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    opts = WhisperOptions(model=v.asr_model, language=v.language, input_device=v.input_device,
                          push_to_talk=v.push_to_talk, cutter=CutterOptions(end_of_utterance_s=v.end_of_utterance_s))
    return WhisperASR(opts, gate=gate, preprocess=preprocess)


class Voice:
    """Speech out and in for one session. ``submit`` is the session's ``submit_query``."""

    def __init__(self, settings: VoiceSettings, bus: EventBus, now: Callable[[], float],
                 submit: Callable[..., None], report: Callable[[str], None]):
        self.settings = settings
        self.bus = bus
        self.now = now
        self.report = report
        self.speaker: Speaker | None = None
        self.asr = None
        self._tts = None  # kept across Speak off/on
        self._asr = None  # kept across Listen off/on
        self._asr_closing: threading.Thread | None = None
        self.canceller = None
        self._lock = threading.Lock()
        self._reported: set[str] = set()
        self.echo = settings.echo
        if self.echo == "aec" and settings.speak and settings.listen:
            self.canceller = self._make_canceller()
        self.turn = TurnTaker(bus, now, submit, None, TurnOptions(barge_in=settings.barge_in, echo=self.echo))
        self._unsubscribe = bus.subscribe(self._on_event)

    def _make_canceller(self):
        try:
            from plugins.asr.aec import EchoCanceller

            ok, hint = EchoCanceller.is_available()
            if ok:
                return EchoCanceller()
        except ImportError as exc:  # optional extra
            hint = str(exc)
        self.echo = "gate"
        self._say_once(f"presence: echo cancellation off ({hint}); the mic is muted while Presence speaks")
        return None

    def _say_once(self, line: str) -> None:
        if line not in self._reported:
            self._reported.add(line)
            self.report(line)

    def _on_event(self, event: Event) -> None:
        """Voice errors raised mid-session (a device vanished) reach the user once."""
        if event.get("type") == EventType.ERROR and event.get("where") in ("tts", "asr"):
            self._say_once(f"presence: {event.get('message', '')}")

    # --- switches (any thread) -----------------------------------------------------------------------
    @property
    def speak_on(self) -> bool:
        return self.speaker is not None

    @property
    def listen_on(self) -> bool:
        return self.asr is not None

    def set_speak(self, on: bool) -> bool:
        """Turn speech on or off; off stops the current utterance at once. Returns the new state."""
        problem = self._switch_speak(on)
        if problem:
            self._say_once(f"presence: {problem} — continuing with text only")
        return self.speaker is not None

    def set_listen(self, on: bool) -> bool:
        """Turn the microphone on or off. Returns the new state."""
        problem = self._switch_listen(on)
        if problem:
            self._say_once(f"presence: {problem} — continuing with text only")
        return self.asr is not None

    def _switch_speak(self, on: bool) -> str:
        with self._lock:
            problem = ""
            if on and self.speaker is None:
                try:
                    # the voice loaded once is kept: switching Speak back on only reopens its output stream
                    tts = self._tts or make_tts(self.settings, on_played=self.canceller.far if self.canceller else None)
                    self._tts = tts
                    self.speaker = Speaker(tts, self.bus, self.now, SpeakerOptions(overlap=self.settings.overlap)).attach()
                except Exception as exc:  # noqa: BLE001 - voice is optional; text goes on
                    problem = describe(exc)
            elif not on and self.speaker is not None:
                speaker, self.speaker = self.speaker, None
                speaker.close()
            self.turn.speaker = self.speaker
            return problem

    def _switch_listen(self, on: bool) -> str:
        with self._lock:
            problem = ""
            if on and self.asr is None:
                try:
                    if self._asr_closing is not None:  # the last Listen-off is still stopping its threads
                        self._asr_closing.join()
                    # the model loaded once is kept: switching Listen back on restarts the microphone only
                    asr = self._asr or make_asr(self.settings, gate=self.turn.mic_gated,
                                                preprocess=self.canceller.near if self.canceller else None)
                    self._asr = asr
                    asr.start(self.turn)
                    self.asr = asr
                except Exception as exc:  # noqa: BLE001
                    problem = describe(exc)
            elif not on and self.asr is not None:
                asr, self.asr = self.asr, None
                # close() waits for a transcription in flight (seconds on a busy CPU): never on the UI thread
                self._asr_closing = threading.Thread(target=asr.close, name="asr-close", daemon=True)
                self._asr_closing.start()
            return problem

    def push_to_talk(self, pressed: bool) -> None:
        asr = self.asr
        if asr is not None:
            (asr.press if pressed else asr.release)()

    # --- status -------------------------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        speaker = self.speaker
        return speaker is not None and speaker.speaking

    def mic_level(self) -> float | None:
        """The microphone's recent level (see ``WhisperASR.level``), None while not listening."""
        asr = self.asr
        level = getattr(asr, "level", None)
        return float(level()) if callable(level) else None

    def close(self) -> None:
        self._unsubscribe()
        self.set_listen(False)
        self.set_speak(False)
        if self._asr_closing is not None:
            self._asr_closing.join(timeout=30)


def start_voice(settings: VoiceSettings, bus: EventBus, now, submit, report) -> Voice:
    """A Voice with the configured halves switched on."""
    voice = Voice(settings, bus, now, submit, report)
    problems = [voice._switch_speak(True) if settings.speak else "", voice._switch_listen(True) if settings.listen else ""]
    unique = list(dict.fromkeys(p for p in problems if p))
    if unique:  # both halves failing for one cause (no sound server) is one line, not two
        voice._say_once("presence: " + "; ".join(unique) + " — continuing with text only")
    return voice
