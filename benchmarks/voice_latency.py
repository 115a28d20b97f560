"""Voice latency on this machine: Piper (joe) out, Whisper tiny.en in, over a real-time PulseAudio
virtual device (tests/audio_env.sh).

    decision → first audio sample: a `decision` event on the bus until the first sample is handed to
        the device (PortAudio callback) and until it is heard on the sink's monitor, rotating per
        decision between three modes in the same run: clause streaming on the session's one output
        stream (the default), the same with an output stream opened per utterance (the previous
        behaviour: the baseline of the persistent stream), and whole-text synthesis on the session's
        stream (the baseline of clause streaming).
    end of speech → transcript: Piper questions played into the virtual mic; from the wall time the
        last voiced sample (|x| > 0.02) entered the mic path to the final transcript (includes the
        end-of-utterance pause), under the previous setting (0.7 s pause, transcription after the cut)
        and the speculative ones (transcription starts 0.2 s into the pause), rotating per question;
        plus the cut → transcript time and one Whisper call's time alone.
    Piper real-time factor: synthesis seconds / audio seconds.

Goals: first audio ≤ 300 ms, transcript ≤ 500 ms.
Usage: python benchmarks/voice_latency.py [--n 10] [--m 10]   (--m 0: TTS only)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESPONSES = [
    "The presenter moved to the results slide, accuracy rose from seventy to eighty two percent.",
    "A new chart appeared, sales grew every month except in March.",
    "Someone in the chat asked about the deadline, it is next Friday.",
    "The code editor shows a failing test, the assertion compares two lists.",
    "This slide lists three risks, cost, schedule and staffing.",
    "The speaker is back on the title slide, so the talk is probably ending.",
]
QUESTIONS = ["What is on the second slide?", "Please summarize the last five minutes.",
             "Tell me when the build finishes.", "Who is speaking right now?"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def start_pulse(runtime: Path) -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "tests" / "audio_env.sh"), "start", str(runtime)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        sys.exit(f"voice_latency: PulseAudio could not start: {out.stderr.strip()}")
    return dict(line.split("=", 1) for line in out.stdout.split() if "=" in line)


class Monitor:
    """parec on a sink's monitor: wall time of every 10 ms block louder than a threshold."""

    def __init__(self, sink: str):
        self.proc = subprocess.Popen(["parec", f"--device={sink}.monitor", "--format=s16le", "--rate=16000",
                                      "--channels=1", "--latency-msec=10"], stdout=subprocess.PIPE)
        self.loud: list[float] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while data := self.proc.stdout.read(320):
            x = np.frombuffer(data, np.int16)
            if np.abs(x).max() > 300:
                self.loud.append(time.perf_counter())

    def first_after(self, t: float) -> float | None:
        return next((w for w in self.loud if w > t), None)

    def close(self) -> None:
        self.proc.terminate()


TTS_MODES = {  # name: (label, persistent output stream, clause streaming)
    "persistent": ("clause streaming, one output stream for the session", True, True),
    "per_utterance": ("clause streaming, an output stream opened per utterance (before)", False, True),
    "whole": ("whole-text synthesis, one output stream for the session", True, False),
}


def bench_tts(n: int) -> dict:
    from engine.events import EventBus
    from engine.speech import Speaker, SpeakerOptions
    from plugins.tts.piper import PiperTTS

    tts = PiperTTS()
    bus = EventBus("bench")
    speaker = Speaker(tts, bus, time.monotonic, SpeakerOptions(overlap="queue")).attach()
    mon = Monitor("speaker")
    time.sleep(0.5)
    res: dict[str, dict[str, list[float]]] = {m: {"cb": [], "heard": [], "sink": [], "synth": [], "device": []}
                                              for m in TTS_MODES}
    names = list(TTS_MODES)
    for i in range(n):
        for mode in names[i % len(names):] + names[: i % len(names)]:
            _, persistent, streaming = TTS_MODES[mode]
            tts.stream, tts.persistent = streaming, persistent
            if persistent:
                tts.open()  # the session's stream: opened once, untimed (a no-op while it is open)
            else:
                tts.close()  # before: no stream between utterances
            time.sleep(0.1)
            t0 = time.perf_counter()
            bus.emit(i, "decision", action="response", text=RESPONSES[i % len(RESPONSES)])
            h = speaker.handles[-1]
            while h.first_audio_wall is None and not h.done:
                time.sleep(0.002)
            time.sleep(0.25)  # let it be heard, then cut it short (we measure the start only)
            h.interrupt()
            h.wait(10)
            res[mode]["cb"].append((h.first_audio_wall - t0) * 1000)
            lt = tts.last_timing  # decision → speak → output ready (sink) → first chunk synthesized → first block
            res[mode]["sink"].append(lt["sink_ms"])
            res[mode]["synth"].append((lt["first_feed_wall"] - lt["speak_wall"]) * 1000 - lt["sink_ms"])
            res[mode]["device"].append((h.first_audio_wall - lt["first_feed_wall"]) * 1000)
            heard = mon.first_after(t0)
            if heard is not None:
                res[mode]["heard"].append((heard - t0) * 1000)
            time.sleep(0.3)
    mon.close()
    opens = tts.output.opens
    # the RTF on complete texts (the interrupted runs above stop synthesis early)
    tts.synth_s = tts.audio_s = 0.0
    for text in RESPONSES:
        for _ in tts.synthesize(text):
            pass
    speaker.close()
    return {"res": res, "rtf": tts.rtf, "audio_s": tts.audio_s, "opens": opens}


CONFIGS = {  # name: (end-of-utterance pause s, speculate_s, sized encoder window)
    "previous (pause 0.7 s, no speculation, 30 s window)": (0.7, 0.0, False),
    "pause 0.7 s, speculation at 0.2 s, sized window": (0.7, 0.2, True),
    "pause 0.5 s, speculation at 0.2 s, sized window": (0.5, 0.2, True),
    "default (pause 0.4 s, speculation at 0.2 s, sized window)": (0.4, 0.2, True),
}


def bench_asr(m: int, configs: dict[str, tuple[float, float, bool]], env: dict[str, str]) -> dict:
    """Each spoken question is heard under every config in turn (rotating order), so the configs share
    the machine's load; the config is switched in the silence between questions."""
    from engine.speech import TurnOptions, TurnTaker
    from plugins.asr.vad import CutterOptions, StreamingVAD, UtteranceCutter
    from plugins.asr.whisper import WhisperASR, WhisperOptions
    from plugins.audio import resample
    from plugins.tts.piper import PiperTTS

    voice = PiperTTS(sink_factory=lambda *a, **k: None, deterministic=True)
    asr = WhisperASR(WhisperOptions())
    prompt = asr._prompt  # None = faster-whisper's 30 s window
    whisper_ms: list[float] = []  # every Whisper call (partials, speculations, finals)
    inner = asr.worker._transcribe

    def timed(audio):
        t0 = time.perf_counter()
        try:
            return inner(audio)
        finally:
            whisper_ms.append((time.perf_counter() - t0) * 1000)
    asr.worker._transcribe = asr.transcribe = timed
    got: list[tuple[float, str]] = []

    class Rec(TurnTaker):
        def on_utterance(self, text: str) -> None:
            got.append((time.perf_counter(), text))

        def on_partial(self, text: str) -> None:  # no bus here; partials still cost their CPU
            pass

    asr.start(Rec(None, time.monotonic, lambda *a, **k: None, None, TurnOptions(echo="off")))
    tmp = Path(tempfile.mkdtemp())
    wavs = []
    for i in range(len(QUESTIONS)):
        x = resample(np.concatenate(list(voice.synthesize(QUESTIONS[i]))), voice.sample_rate, 16000)
        wav = tmp / f"q{i}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())
        voiced = np.nonzero(np.abs(x) > 0.02)[0]
        wavs.append((wav, (voiced[-1] + 1) / 16000))  # end of speech: the last voiced sample
    res = {name: {"total": [], "after_cut": [], "eou": [], "spec": [], "texts": []} for name in configs}
    names = list(configs)
    for i in range(m):
        q = QUESTIONS[i % len(QUESTIONS)]
        wav, speech_end_s = wavs[i % len(QUESTIONS)]
        for name in names[i % len(names):] + names[: i % len(names)]:
            eou, spec, sized = configs[name]
            asr._prompt = prompt if sized else None
            asr.o.cutter = CutterOptions(end_of_utterance_s=eou, speculate_s=spec)
            asr.cutter = UtteranceCutter(StreamingVAD(), asr.o.cutter)
            n0 = len(got)
            t_play = time.perf_counter()
            subprocess.Popen(["paplay", "--device=mouth", "--latency-msec=20", str(wav)], env={**os.environ, **env})
            end = time.monotonic() + 15
            while len(got) == n0 and time.monotonic() < end:
                time.sleep(0.002)
            if len(got) == n0:
                print(f"  ({name}: no transcript for {q!r})")
                continue
            t_got, text = got[-1]
            r = res[name]
            r["total"].append((t_got - (t_play + speech_end_s)) * 1000)
            r["after_cut"].append(asr.last.transcribe_ms)
            r["eou"].append(asr.last.eou_wait_ms)
            r["spec"].append(asr.last.speculative)
            r["texts"].append((q, text))
            time.sleep(0.5)
    asr.close()
    return {"res": res, "whisper_ms": whisper_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10, help="decisions per TTS mode")
    ap.add_argument("--m", type=int, default=10, help="spoken questions for the ASR (each under every config)")
    a = ap.parse_args()
    runtime = Path(tempfile.mkdtemp(prefix="presence-bench-pulse-"))
    env = start_pulse(runtime)
    os.environ.update(env)
    try:
        print(f"voice latency on {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; PulseAudio null sinks")
        t = bench_tts(a.n)
        for mode, (label, _, _) in TTS_MODES.items():
            cb, heard = t["res"][mode]["cb"], t["res"][mode]["heard"]
            line = f"decision → first audio sample, {label} (n={len(cb)}): p50 {pct(cb, .5):.0f} ms, p95 {pct(cb, .95):.0f} ms"
            if heard:
                line += f"; heard on the sink p50 {pct(heard, .5):.0f} ms, p95 {pct(heard, .95):.0f} ms"
            print(line)
            r = t["res"][mode]
            print("    of which: " + ", ".join(
                f"{what} p50 {pct(r[key], .5):.0f} / p95 {pct(r[key], .95):.0f} / max {max(r[key]):.0f} ms"
                for key, what in (("sink", "output ready (stream opened or joined)"),
                                  ("synth", "first chunk synthesized"), ("device", "first chunk → first block out"))))
        p = {m: (pct(t["res"][m]["cb"], .5), pct(t["res"][m]["cb"], .95)) for m in TTS_MODES}
        print(f"one stream for the session vs a stream per utterance: first audio p50 {p['per_utterance'][0]:.0f} → "
              f"{p['persistent'][0]:.0f} ms, p95 {p['per_utterance'][1]:.0f} → {p['persistent'][1]:.0f} ms (goal ≤ 300 ms: "
              f"{'met' if p['persistent'][1] <= 300 else 'NOT met'} at p95; the session stream was opened "
              f"{t['opens']}× in {a.n * len(TTS_MODES)} utterances, once per switch back from the per-utterance mode)")
        print(f"clause streaming vs whole-text: first audio p50 {p['whole'][0] / p['persistent'][0]:.2f}× sooner")
        print(f"Piper RTF: {t['rtf']:.3f} ({t['audio_s']:.1f} s of audio)")
        if a.m <= 0:
            return
        r = bench_asr(a.m, CONFIGS, env)
        base = None
        for name, x in r["res"].items():
            if not x["total"]:
                continue
            t50 = pct(x["total"], .5)
            base = base or t50
            exact = sum(words(t) == words(q) for q, t in x["texts"])
            print(f"end of speech → transcript, {name} (n={len(x['total'])}): p50 {t50:.0f} ms, "
                  f"p95 {pct(x['total'], .95):.0f} ms ({base / t50:.2f}× the previous p50; goal ≤ 500 ms: "
                  f"{'met' if t50 <= 500 else 'NOT met'} at p50)")
            print(f"    pause waited (VAD end of speech → cut) p50 {pct(x['eou'], .5):.0f} ms; cut → transcript "
                  f"p50 {pct(x['after_cut'], .5):.0f} ms, p95 {pct(x['after_cut'], .95):.0f} ms; speculation used "
                  f"{sum(x['spec'])}/{len(x['spec'])}; exact {exact}/{len(x['texts'])}")
        w = r["whisper_ms"]
        print(f"one Whisper tiny.en call (int8, 2 threads; partials, speculations, finals; n={len(w)}): "
              f"p50 {pct(w, .5):.0f} ms, p95 {pct(w, .95):.0f} ms")
        texts = sorted({t for x in r["res"].values() for _, t in x["texts"]})
        print("transcripts:", " | ".join(texts))
    finally:
        subprocess.run(["bash", str(ROOT / "tests" / "audio_env.sh"), "stop", str(runtime)], capture_output=True)


if __name__ == "__main__":
    main()
