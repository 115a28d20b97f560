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
from collections import deque
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


# --- the change measure every backend shares -------------------------------------------------------
# A frame becomes a small *signature*: CIELAB on a downscaled frame (the gaussian halving and area
# averaging are the blur that averages sensor noise away). Two signatures differ per cell by ΔE76/100
# (L* spans 0–100, so a pure brightness step reads about like the same step of grey in [0, 1]);
# cells inside the pair's noise floor (median + NOISE_K robust sigmas of all cells, since most cells
# of two frames of one scene differ by noise only) do not count. So an orange-red blob on a grey wall
# of the same brightness, or a background switching between two colours of one luminance, is a
# change; gaussian noise and a re-encode's flicker, spread over the whole frame, are not.

_THUMB = (32, 24)  # the sampler's and the heuristic's grid: cheap, and noise averages away
NOISE_K = 4.0  # cells this many robust sigmas above the pair's median difference are not noise
NOISE_CAP = 0.15  # the floor never exceeds this (ΔE 15): beyond it a difference is a change, not noise


def signature(pixels: np.ndarray, size: tuple[int, int] = _THUMB) -> np.ndarray:
    """A [h, w, 3] float32 CIELAB signature of an RGB uint8 frame (or a grey one), L* in [0, 1]."""
    rgb = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB) if pixels.ndim == 2 else pixels
    while rgb.shape[1] >= 8 * size[0]:  # halve with a gaussian first: 5× cheaper than one big INTER_AREA,
        rgb = cv2.pyrDown(rgb)  # and stopping at 4–8× the grid keeps thin text strokes visible in the cells
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB) / 100.0


def thumbnail(pixels: np.ndarray) -> np.ndarray:
    """The 32×24 signature, the basis of the sampler's change score and the heuristic backend."""
    return signature(pixels, _THUMB)


def cell_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-cell perceptual colour difference (ΔE76 / 100) of two signatures of one size."""
    return np.sqrt(np.sum((a - b) ** 2, axis=-1))


def _median(x: np.ndarray) -> float:
    """The (upper) median by partial sort: 10× cheaper than np.median on a few thousand cells."""
    flat = x.ravel()
    return float(np.partition(flat, flat.size // 2)[flat.size // 2])


def noise_floor(diff: np.ndarray) -> float:
    """The level below which a pair's cell differences are noise: median + NOISE_K·1.4826·MAD, capped.

    Robust because sensor noise and codec flicker touch every cell a little while a change touches some
    cells a lot; a change of most of the frame lifts the floor only to NOISE_CAP.
    """
    med = _median(diff)
    mad = _median(np.abs(diff - med))
    return min(NOISE_CAP, med + NOISE_K * 1.4826 * mad)


def change_score(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """How much two signatures differ beyond their noise floor: mean excess ΔE/100; 1.0 with no reference."""
    if a is None or b is None:
        return 1.0
    d = cell_difference(a, b)
    return float(np.mean(np.maximum(d - noise_floor(d), 0.0)))


def changed_fraction(a: np.ndarray | None, b: np.ndarray | None, delta: float = 0.03) -> float:
    """Share of cells whose colour moved by more than ``delta`` (ΔE/100, ≈ 8/255 of grey) above the noise floor.

    Better than the mean for text: a new slide title changes ~10% of cells strongly but the mean
    only a little; noise and flicker stay under the floor.
    """
    if a is None or b is None:
        return 1.0
    d = cell_difference(a, b)
    return float(np.mean(d > delta + noise_floor(d)))

class MotionMeter:
    """Is the view still moving (a fade, a scroll), or only noisy? Against the stream's own noise level.

    One pair cannot tell a slow, even fade from noise — both move every cell a little — but a stream's
    sensor noise and codec flicker are steady: the smallest mean cell difference of the last ``window``
    consecutive pairs is its noise level, and motion is the mean difference above that.
    """

    def __init__(self, window: int = 30):
        self._recent: deque[float] = deque(maxlen=window)

    def motion(self, prev: np.ndarray | None, cur: np.ndarray) -> float:
        """Mean ΔE/100 of this pair above the stream's noise level; 1.0 with no previous signature."""
        if prev is None:
            return 1.0
        mean = float(np.mean(cell_difference(prev, cur)))
        self._recent.append(mean)
        return max(0.0, mean - min(self._recent))


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
