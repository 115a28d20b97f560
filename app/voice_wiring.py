"""Voice for a built session: a Speaker on the bus (--speak) and an ASR feeding the session (--listen).

Never fatal: any failure (no PortAudio, no device, missing voice or model) is ONE line on stderr and
the session runs on with whatever works — text is always shown and logged. A device that vanishes
mid-session is reported the same way, once, when it happens.
"""

from __future__ import annotations

from typing import Any, TextIO

from app.config import Settings, VoiceSettings
from engine.speech import Speaker, SpeakerOptions, TurnOptions, TurnTaker


def _describe(exc: BaseException) -> str:
    try:
        from plugins.audio import describe
    except Exception:  # noqa: BLE001 - numpy-free fallback
        return f"voice off: {exc}"
    return describe(exc)


def make_tts(v: VoiceSettings):
    if v.tts == "silent":
        from plugins.tts.fake import SilentTTS

        return SilentTTS()
    if v.tts != "piper":
        raise RuntimeError(f"voice off: unknown TTS {v.tts!r} (piper | silent)")
    from plugins.tts.piper import PiperTTS

    ok, hint = PiperTTS.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    return PiperTTS(voice=v.voice, output_device=v.output_device)


def make_asr(v: VoiceSettings, gate):
    if v.asr != "whisper":
        raise RuntimeError(f"voice off: unknown ASR {v.asr!r} (whisper)")
    from plugins.asr.vad import CutterOptions
    from plugins.asr.whisper import WhisperASR, WhisperOptions

    ok, hint = WhisperASR.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    opts = WhisperOptions(model=v.asr_model, language=v.language, input_device=v.input_device,
                          push_to_talk=v.push_to_talk, cutter=CutterOptions(end_of_utterance_s=v.end_of_utterance_s))
    return WhisperASR(opts, gate=gate)


class _ErrorReporter:
    """Writes each voice error event (device vanished mid-session) to stderr once."""

    def __init__(self, stderr: TextIO):
        self.stderr = stderr
        self.seen: set[str] = set()

    def __call__(self, event: dict) -> None:
        if event.get("type") == "error" and event.get("where") in ("tts", "asr"):
            msg = str(event.get("message", ""))
            if msg not in self.seen:
                self.seen.add(msg)
                self.stderr.write(f"presence: {msg}\n")


class _Closer:
    def __init__(self, fn):
        self.close = fn


def attach_voice(built: Any, settings: Settings, stderr: TextIO) -> list:
    """Attach speech out/in to ``built`` (app.wiring.Built). Returns objects with ``.close()``."""
    v = settings.voice
    session, bus = built.session, built.bus
    now = session.clock.now
    out: list = []
    problems: list[str] = []
    speaker = None
    if v.speak:
        try:
            speaker = Speaker(make_tts(v), bus, now, SpeakerOptions(overlap=v.overlap)).attach()
            out.append(speaker)
        except Exception as exc:  # noqa: BLE001 - voice is optional; text goes on
            problems.append(_describe(exc))
    if v.listen:
        try:
            turn = TurnTaker(bus, now, session.submit_query, speaker,
                             TurnOptions(barge_in=v.barge_in, echo=v.echo))
            asr = make_asr(v, gate=turn.mic_gated)
            asr.start(turn)
            out.append(asr)
        except Exception as exc:  # noqa: BLE001
            problems.append(_describe(exc))
    if problems:
        unique = list(dict.fromkeys(problems))
        stderr.write("presence: " + "; ".join(unique) + " — continuing with text only\n")
    if out:
        out.append(_Closer(bus.subscribe(_ErrorReporter(stderr))))
    return out
