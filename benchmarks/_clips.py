"""Clip generation shared by benchmarks (cached under the system temp dir)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assets" / "demo"))
from make_demo_clip import SLIDES, write_slides  # noqa: E402


def slides_clip(minutes: float, seconds_per_slide: float = 60.0, fps: float = 2.0) -> Path:
    """A lecture clip of ``minutes`` minutes (slides cycle), cached by its parameters."""
    out = Path(tempfile.gettempdir()) / f"presence-bench-{minutes:g}m-{seconds_per_slide:g}s-{fps:g}fps.mp4"
    if not out.exists():
        n = int(round(minutes * 60 / seconds_per_slide))
        slides = [(f"{SLIDES[i % len(SLIDES)][0]} ({i + 1})", SLIDES[i % len(SLIDES)][1]) for i in range(n)]
        write_slides(out, slides, seconds_per_slide=seconds_per_slide, fps=fps)
    return out
