"""The shared change measure (engine.frames) on generated clips of exactly the hard kinds: a colour
change at equal brightness must be seen by ``heuristic`` and ``lite``; sensor noise and compression
flicker on a still scene must not be.

Every case is checked to be what it claims first: the equal-brightness cases leave the old grey
thumbnail unchanged (so a luminance-only measure is blind to them), and each noise clip ends with a
real change that must still be seen (noise must not make the backends blind either).
"""

import importlib.util
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from engine.backends.base import BackendConfig
from engine.backends.heuristic import HeuristicBackend, HeuristicOptions
from engine.context import ChunkPrefix, Turn
from engine.eval.render import room, slide
from engine.frames import changed_fraction, signature, thumbnail
from engine.perception.views import ViewTracker
from engine.protocol import normalize

SIZE = (320, 240)
needs_ocr = pytest.mark.skipif(importlib.util.find_spec("rapidocr") is None, reason="lite needs rapidocr")


def equal_grey(r: int, b: int, grey: int) -> tuple[int, int, int]:
    """An RGB colour with red ``r`` and blue ``b`` whose OpenCV grey level is ``grey`` (green solves it)."""
    return r, int(round((grey - 0.299 * r - 0.114 * b) / 0.587)), b


def grey_thumb(px: np.ndarray) -> np.ndarray:
    """The luminance-only measure this replaced: a 32×24 grey thumbnail in [0, 1]."""
    return cv2.resize(cv2.cvtColor(px, cv2.COLOR_RGB2GRAY), (32, 24), interpolation=cv2.INTER_AREA) / 255.0


def wall() -> np.ndarray:
    """A grey wall with a soft plaster texture."""
    tex = cv2.GaussianBlur(np.random.default_rng(5).normal(0, 6, SIZE[::-1]).astype(np.float32), (0, 0), 3)
    return np.clip(128 + tex[..., None], 0, 255).repeat(3, axis=2).astype(np.uint8)


def with_blob(px: np.ndarray) -> np.ndarray:
    """An orange-red disc as bright (in grey) as the wall around it."""
    out = px.copy()
    cv2.circle(out, (SIZE[0] // 2, SIZE[1] // 2), SIZE[1] // 6, equal_grey(220, 51, int(np.median(px))), -1)
    return out


def recoloured_slide(bg: tuple[int, int, int]) -> np.ndarray:
    px = slide("Quarterly review", ["Revenue up", "Costs flat"], SIZE, accent=(0, 0, 0))
    px = px.copy()
    px[px.astype(int).sum(-1) > 600] = bg  # the white background becomes ``bg``
    return px


BLUE, ORANGE = equal_grey(60, 200, 140), equal_grey(200, 60, 140)


def run_heuristic(frames: list[np.ndarray]) -> list[int]:
    b = HeuristicBackend(HeuristicOptions(ocr=False))
    b.start_chunk(ChunkPrefix("sys", ""))
    return _run(b, frames, "")


def run_lite(frames: list[np.ndarray], query: str) -> list[int]:
    from engine.backends.lite import LiteBackend, LiteOptions

    b = LiteBackend(LiteOptions(llm=False))  # template lines: no model needed
    b.load(BackendConfig())
    return _run(b, frames, query)


def _run(backend, frames: list[np.ndarray], query: str) -> list[int]:
    """Seconds at which the backend responded."""
    said = []
    for t, px in enumerate(frames):
        backend.observe(Turn(t=t, pixels=px, query=query if t == 0 and query else None, standing_query=query))
        d = normalize("".join(backend.decide()))
        backend.commit(d.canonical())
        if d.action == "response":
            said.append(t)
    return said


# --- equal-brightness colour changes ---------------------------------------------------------------
def colour_cases() -> dict[str, list[np.ndarray]]:
    return {"blob on a grey wall": [wall()] * 4 + [with_blob(wall())] * 5,
            "background switch": [recoloured_slide(BLUE)] * 4 + [recoloured_slide(ORANGE)] * 5}


@pytest.mark.parametrize("name", list(colour_cases()))
def test_the_cases_are_invisible_to_a_luminance_only_measure(name):
    frames = colour_cases()[name]
    assert np.abs(grey_thumb(frames[0]) - grey_thumb(frames[-1])).max() < 2 / 255  # same grey, cell by cell
    assert changed_fraction(thumbnail(frames[0]), thumbnail(frames[-1])) > 0.05  # the shared measure sees it


@pytest.mark.parametrize("name", list(colour_cases()))
def test_heuristic_sees_a_colour_change_at_equal_brightness(name):
    assert run_heuristic(colour_cases()[name]) == [0, 4]  # the first view, then the change


@needs_ocr
@pytest.mark.parametrize("name", list(colour_cases()))
def test_lite_sees_a_colour_change_at_equal_brightness(name):
    assert run_lite(colour_cases()[name], "Alert me when something appears.") == [4]


def test_the_view_tracker_offers_a_background_switch_once_it_settles():
    vt = ViewTracker()
    blue, orange = signature(recoloured_slide(BLUE), (80, 60)), signature(recoloured_slide(ORANGE), (80, 60))
    assert vt.update(blue, [], 240) is None and vt.update(orange, [], 240) is None  # start; still moving
    ch = vt.update(orange, [], 240)
    assert ch is not None and ch.fraction > 0.8


# --- noise-only clips ------------------------------------------------------------------------------
# Strong enough that the same colour measure without its noise floor speaks on every one of them
# (checked: heuristic and lite both respond within the quiet seconds).
QUIET, AFTER = 10, 4  # seconds of a still, noisy scene; then the blob appears (still noisy) for 4 s


def gaussian(px: np.ndarray, rng: np.random.Generator, sigma: float = 20.0) -> np.ndarray:
    """Sensor noise of a webcam in dim light (σ = 20 grey levels per pixel and channel)."""
    return np.clip(px + rng.normal(0, sigma, px.shape), 0, 255).astype(np.uint8)


def jpeg(px: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(px, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def through_video(frames: list[np.ndarray], tmp_path, codec: str) -> list[np.ndarray]:
    """Frames after a lossy encode and decode: MPEG-4 through OpenCV, or H.264 through ffmpeg."""
    path = tmp_path / f"{codec}.mp4"
    if codec == "mp4v":
        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 1.0, SIZE)
        for px in frames:
            w.write(cv2.cvtColor(px, cv2.COLOR_RGB2BGR))
        w.release()
    else:
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                        f"{SIZE[0]}x{SIZE[1]}", "-r", "1", "-i", "-", "-c:v", "libx264", "-crf", "35",
                        "-pix_fmt", "yuv420p", str(path)], input=np.stack(frames).tobytes(), check=True)
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    assert len(out) == len(frames)
    return out


def noisy_clip(kind: str, tmp_path) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    still = room(False, SIZE)  # a camera view: flat walls, a door, a floor
    scenes = [still] * QUIET + [with_blob(still)] * AFTER
    if kind == "gaussian sensor noise":
        return [gaussian(px, rng) for px in scenes]
    if kind == "JPEG re-encode flicker":  # each second at another quality, as a web cam's encoder varies it
        return [jpeg(px, int(q)) for px, q in zip(scenes, rng.integers(20, 95, len(scenes)), strict=True)]
    return through_video([gaussian(px, rng) for px in scenes], tmp_path, kind.split()[0])


def _has_x264() -> bool:
    if shutil.which("ffmpeg") is None:
        return False
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libx264" in encoders


NOISE_KINDS = ["gaussian sensor noise", "JPEG re-encode flicker", "mp4v encode of a noisy camera",
               pytest.param("h264 encode of a noisy camera",
                            marks=pytest.mark.skipif(not _has_x264(), reason="ffmpeg with libx264 is not installed"))]


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_heuristic_stays_silent_on_noise_and_still_sees_the_change_after_it(kind, tmp_path):
    assert run_heuristic(noisy_clip(kind, tmp_path)) == [0, QUIET]


@needs_ocr
@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_lite_stays_silent_on_noise_and_still_sees_the_change_after_it(kind, tmp_path):
    assert run_lite(noisy_clip(kind, tmp_path), "Alert me when something appears.") == [QUIET]
