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


def make_tts(v: VoiceSettings, on_played=None):
    if v.tts == "silent":
        from plugins.tts.fake import SilentTTS

        return SilentTTS()
    if v.tts != "piper":
        raise RuntimeError(f"voice off: unknown TTS {v.tts!r} (piper | silent)")
    from plugins.tts.piper import PiperTTS

    ok, hint = PiperTTS.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    return PiperTTS(voice=v.voice, output_device=v.output_device, on_played=on_played)


def make_asr(v: VoiceSettings, gate, preprocess=None):
    if v.asr != "whisper":
        raise RuntimeError(f"voice off: unknown ASR {v.asr!r} (whisper)")
    from plugins.asr.vad import CutterOptions
    from plugins.asr.whisper import WhisperASR, WhisperOptions

    ok, hint = WhisperASR.is_available()
    if not ok:
        raise RuntimeError(f"voice off: {hint}")
    opts = WhisperOptions(model=v.asr_model, language=v.language, input_device=v.input_device,
                          push_to_talk=v.push_to_talk, cutter=CutterOptions(end_of_utterance_s=v.end_of_utterance_s))
    return WhisperASR(opts, gate=gate, preprocess=preprocess)


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
    echo, canceller = v.echo, None
    if echo == "aec" and v.speak and v.listen:
        try:
            from plugins.asr.aec import EchoCanceller

            ok, hint = EchoCanceller.is_available()
            canceller = EchoCanceller() if ok else None
        except Exception as exc:  # noqa: BLE001
            ok, hint = False, str(exc)
        if canceller is None:
            echo = "gate"
            problems.append(f"echo cancellation off ({hint}); the mic is muted while Presence speaks")
    if v.speak:
        try:
            tts = make_tts(v, on_played=canceller.far if canceller else None)
            speaker = Speaker(tts, bus, now, SpeakerOptions(overlap=v.overlap)).attach()
            out.append(speaker)
        except Exception as exc:  # noqa: BLE001 - voice is optional; text goes on
            problems.append(_describe(exc))
    if v.listen:
        try:
            turn = TurnTaker(bus, now, session.submit_query, speaker,
                             TurnOptions(barge_in=v.barge_in, echo=echo))
            asr = make_asr(v, gate=turn.mic_gated, preprocess=canceller.near if canceller else None)
            asr.start(turn)
            out.append(asr)
        except Exception as exc:  # noqa: BLE001
            problems.append(_describe(exc))
    if problems:
        unique = list(dict.fromkeys(problems))
        suffix = " — continuing with text only" if any("voice off" in p for p in unique) else ""
        stderr.write("presence: " + "; ".join(unique) + suffix + "\n")
    if out:
        out.append(_Closer(bus.subscribe(_ErrorReporter(stderr))))
    return out
