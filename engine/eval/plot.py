"""Timeline PNG per clip: expected answer windows against the decisions actually made (PIL only).

    questions  ▼ black marks at the query seconds
    expected   green boxes = answer windows (darker when a reply matched)
    replies    blue = matched (TP), orange = inside a window but wrong, red = false alarm
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from engine.eval import metrics
from engine.eval.render import font


def timeline_png(run, path: Path, backend: str = "", width: int = 1000) -> Path:
    ann = run.annotation
    dur = max(1, int(ann["duration"]))
    exp = metrics.expected_from_annotation(ann)
    _, _, _, matched = metrics.match(exp, run.replies)
    matched_ids = {m for m in matched if m is not None}
    left, right, h = 90, 20, 150
    img = Image.new("RGB", (width, h), (255, 255, 255))
    d = ImageDraw.Draw(img)
    sx = (width - left - right) / dur

    def x(t: float) -> int:
        return int(left + t * sx)

    f = font(11, False)
    d.text((4, 4), f"{ann['video_name']}  [{backend}]  SW-F1 "
                   f"{'—' if run.score.sw_f1 is None else f'{run.score.sw_f1:.2f}'}", fill=(0, 0, 0), font=f)
    for label, y in (("questions", 30), ("expected", 60), ("replies", 100)):
        d.text((4, y), label, fill=(60, 60, 60), font=f)
    for q in ann.get("question", []):
        t = float(q["time"])
        d.polygon([(x(t) - 4, 30), (x(t) + 4, 30), (x(t), 40)], fill=(0, 0, 0))
    for e, m in zip(sorted(exp, key=lambda e: e.window[0]), matched, strict=False):
        colour = (40, 150, 60) if m is not None else (170, 220, 170)
        d.rectangle([x(e.window[0]), 55, max(x(e.window[0]) + 2, x(e.window[1] + 1)), 80], fill=colour)
    for i, r in enumerate(run.replies):
        inside = any(e.window[0] <= r.t <= e.window[1] for e in exp)
        colour = (40, 80, 220) if i in matched_ids else ((240, 150, 30) if inside else (220, 40, 40))
        d.line([(x(r.t + 0.5), 92), (x(r.t + 0.5), 120)], fill=colour, width=2)
    d.line([(left, 130), (width - right, 130)], fill=(0, 0, 0))
    step = max(1, dur // 10)
    for t in range(0, dur + 1, step):
        d.line([(x(t), 128), (x(t), 133)], fill=(0, 0, 0))
        d.text((x(t) - 8, 135), f"{t}s", fill=(0, 0, 0), font=f)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
