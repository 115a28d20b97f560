"""Generate the bundled demo clip: a lecture-slides video (60 s, 6 slides, 5 fps, mp4v).

    python assets/demo/make_demo_clip.py [OUT.mp4] [--seconds-per-slide 10]

Deterministic: the same script writes the same frames. Also used by tests to make slide clips
with known change times (``write_slides``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere
from engine.eval.render import font  # noqa: E402  (one font loader for every rendered frame)

SLIDES = [
    ("Presence", ["A companion that watches", "and speaks only when it matters"]),
    ("Why streaming?", ["Every second: silence,", "respond, or delegate"]),
    ("The KV cache", ["Prefill only the new frame", "never the whole history"]),
    ("Memory tiers", ["Short: raw turns", "Mid: summaries  Long: merged"]),
    ("Delegation", ["Hard questions go to", "a background brain"]),
    ("Thank you", ["Questions?", "github.com/presence"]),
]

def render_slide(title: str, bullets: list[str], size=(640, 360), bg=(245, 245, 240), accent=(30, 80, 160)) -> np.ndarray:
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 16], fill=accent)
    d.text((40, 50), title, fill=accent, font=font(44))
    for i, line in enumerate(bullets):
        d.text((60, 150 + i * 50), "• " + line, fill=(30, 30, 30), font=font(26))
    return np.asarray(img)


def write_video(path: str | Path, frames_rgb, fps: float) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    for rgb in frames_rgb:
        if writer is None:
            h, w = rgb.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
    return path


def write_slides(path: str | Path, slides=SLIDES, seconds_per_slide: float = 10.0, fps: float = 5.0,
                 size=(640, 360)) -> Path:
    """A slides clip; slide i is on screen during [i*s, (i+1)*s)."""
    rendered = [render_slide(t, b, size) for t, b in slides]
    per = int(round(seconds_per_slide * fps))
    return write_video(path, (r for r in rendered for _ in range(per)), fps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?", default=str(Path(__file__).with_name("lecture_slides.mp4")))
    ap.add_argument("--seconds-per-slide", type=float, default=10.0)
    a = ap.parse_args()
    p = write_slides(a.out, seconds_per_slide=a.seconds_per_slide)
    print(f"{p} {p.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
