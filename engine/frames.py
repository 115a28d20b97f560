"""Frames and the latest-frame sampler.

A capture plugin pushes frames as fast as it gets them; the session only ever wants the *latest*
frame of each one-second tick. The sampler therefore keeps one slot, never a queue: a frame that
arrives while the previous one is still pending replaces it (stale frames are dropped, DESIGN §2).

    capture ──push(frame)──▶ [ one slot ] ──take()──▶ session tick
                               ▲ newer frame overwrites
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 448 * 448  # ≈ 200k pixels: the per-tick cost lever (seed_systems §8.2)


@dataclass(frozen=True, eq=False)  # identity equality: comparing pixel arrays is meaningless
class Frame:
    """One captured picture.

    pixels: uint8 RGB array [H, W, 3].
    t: stream time in seconds when it was captured (video PTS, or seconds since the session started).
    source: the capture source's label (``screen:1``, a file path, …).
    index: running number of the frame within its source.
    """

    pixels: np.ndarray
    t: float
    source: str = ""
    index: int = 0

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def fit_to_max_pixels(pixels: np.ndarray, max_pixels: int) -> np.ndarray:
    """Downscale (never upscale) to at most ``max_pixels`` pixels, keeping the aspect ratio."""
    h, w = pixels.shape[:2]
    if h * w <= max_pixels:
        return pixels
    scale = math.sqrt(max_pixels / float(h * w))
    nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
    # INTER_AREA avoids aliasing on strong downscales but costs ~2.5 ms at mild, non-integer ratios
    # (640×360 → 597×336); bilinear is indistinguishable there and 5× cheaper.
    interp = cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR
    return cv2.resize(pixels, (nw, nh), interpolation=interp)


_THUMB = (32, 24)  # tiny grey thumbnail for the change score: cheap and robust to noise


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """A 32×24 grey float thumbnail in [0, 1], the basis of every change score."""
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if pixels.ndim == 3 else pixels
    h, w = grey.shape[:2]
    if w > 8 * _THUMB[0]:  # integer-ratio pre-shrink keeps INTER_AREA on its fast path
        fx = w // (4 * _THUMB[0])
        grey = cv2.resize(grey, (w // fx, h // fx), interpolation=cv2.INTER_AREA)
    return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def change_score(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """Mean absolute difference of two thumbnails, in [0, 1]; 1.0 when there is no reference."""
    if a is None or b is None:
        return 1.0
    return float(np.mean(np.abs(a - b)))


def changed_fraction(a: np.ndarray | None, b: np.ndarray | None, delta: float = 0.03) -> float:
    """Fraction of thumbnail cells whose brightness moved by more than ``delta`` (≈8/255).

    Better than the mean for text: a new slide title changes ~10% of cells strongly but the mean
    only by ~0.02; sensor noise (averaged away by the 32×24 thumbnail) moves no cell that far.
    """
    if a is None or b is None:
        return 1.0
    return float(np.mean(np.abs(a - b) > delta))


@dataclass
class SampledFrame:
    """A frame as the model sees it: resized, with its change score against the previous sample."""

    frame: Frame
    pixels: np.ndarray  # resized RGB [h, w, 3], h*w <= max_pixels
    thumb: np.ndarray = field(repr=False)
    change: float = 1.0  # vs the previous *sampled* frame


class FrameSampler:
    """Keeps only the latest frame; resizes to ``max_pixels`` and scores change when taken.

    Thread-safe: ``push`` is called from a capture thread, ``take`` from the session. A frame
    stamped at or after the tick's end (it raced the tick boundary) stays for the next tick, so
    tick ``t`` only ever sees frames captured in [t, t+1). Resizing happens in ``take`` so frames
    that are overwritten never cost a resize.
    """

    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.max_pixels = max_pixels
        self._lock = threading.Lock()
        self._pending: list[Frame] = []  # at most a few frames, newest last
        self._last_thumb: np.ndarray | None = None
        self.dropped = 0  # frames overwritten before anyone took them

    def push(self, frame: Frame) -> None:
        with self._lock:
            self._pending.append(frame)
            if len(self._pending) > 4:  # bounded: stale frames are dropped, never queued
                self.dropped += len(self._pending) - 4
                del self._pending[:-4]

    def take(self, before: float | None = None) -> SampledFrame | None:
        """The latest frame (stamped before ``before``, if given) since the last take, or None."""
        with self._lock:
            ready = [f for f in self._pending if before is None or f.t < before]
            if not ready:
                return None
            frame = ready[-1]
            self.dropped += len(ready) - 1
            self._pending = self._pending[len(ready):] if before is None else [f for f in self._pending if f.t >= before]
        pixels = fit_to_max_pixels(frame.pixels, self.max_pixels)
        thumb = thumbnail(pixels)
        score = change_score(self._last_thumb, thumb)
        self._last_thumb = thumb
        return SampledFrame(frame=frame, pixels=pixels, thumb=thumb, change=score)
