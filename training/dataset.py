"""The reference release's per-second dataset format, read and written.

An annotation (one JSON file beside its video) is::

    {"video_path": "clip.mp4", "question": [{"content": "...", "time": "0"}],
     "response": [{"content": "...", "time": "31"},
                  {"content": "note </delegation> question", "time": "40", "delegate": true}]}

It expands to one user/assistant pair per second (``per_second``): the user turn is the time
marker ``<k.0 seconds>`` plus that second's frame (and the question text on the second it is asked);
the assistant turn is ``</silence>``, ``</response> content`` or, for a delegated item,
``</response> note </delegation> question``. A folder of annotations plus their videos is a dataset;
``presence eval make-suite`` output is one as it stands (its extra fields are kept and ignored).

Our additions, all optional: ``duration`` (seconds; probed from the video when absent) and
``weights`` (``{"second": weight multiplier}``, written by the corrections export so seconds the user
only let stand count less than the ones they corrected).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from engine.context import time_marker
from engine.protocol import DELEGATION, RESPONSE, SILENCE

MANIFESTS = {"suite.json", "dataset.json"}  # folder-level files that are not annotations


class DatasetError(ValueError):
    """A bad annotation: one line naming the file and the field."""


@dataclass
class Item:
    t: int
    content: str
    delegate: bool = False

    def decision(self) -> str:
        """The assistant text for this second, as the live context commits it."""
        content = " ".join(self.content.split())
        if self.delegate and DELEGATION not in content:
            raise DatasetError(f"delegated item at {self.t}s has no '{DELEGATION}' in its content")
        return f"{RESPONSE} {content}".strip()


@dataclass
class Annotation:
    path: Path  # the JSON file
    video: Path
    duration: int
    questions: list[Item] = field(default_factory=list)
    responses: list[Item] = field(default_factory=list)
    weights: dict[int, float] = field(default_factory=dict)  # per-second loss weight multipliers
    extra: dict = field(default_factory=dict)  # every other field, kept for writing back

    @property
    def name(self) -> str:
        return self.path.stem

    def decisions(self) -> list[str]:
        """The gold decision text for every second 0 … duration-1."""
        out = [SILENCE] * self.duration
        for r in self.responses:
            out[r.t] = r.decision()
        return out

    def queries(self) -> dict[int, str]:
        return {q.t: q.content for q in self.questions}

    def to_json(self) -> dict:
        data = dict(self.extra)
        data.update({
            "video_path": self.video.name if self.video.parent == self.path.parent else str(self.video),
            "duration": self.duration,
            "question": [{"content": q.content, "time": str(q.t)} for q in self.questions],
            "response": [{"content": r.content, "time": str(r.t), **({"delegate": True} if r.delegate else {})}
                         for r in self.responses],
        })
        if self.weights:
            data["weights"] = {str(t): w for t, w in sorted(self.weights.items())}
        else:
            data.pop("weights", None)
        return data


def per_second(ann: Annotation) -> list[dict]:
    """The reference's per-second message pairs: user (question, time marker, frame), assistant."""
    queries, decisions, out = ann.queries(), ann.decisions(), []
    for t in range(ann.duration):
        content = []
        if t in queries:
            content.append({"type": "text", "text": queries[t]})
        content.append({"type": "text", "text": time_marker(t)})
        content.append({"type": "image", "video": ann.video.name, "time": t})
        out.append({"role": "user", "content": content})
        out.append({"role": "assistant", "content": decisions[t]})
    return out


def video_seconds(video: Path) -> int:
    """Whole seconds of a video (frame count / fps), 0 when it cannot be read."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            return 0
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
        return int(n / fps) if fps > 0 else 0
    finally:
        cap.release()


def _time(path: Path, where: str, value, duration: int | None) -> int:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: {where}.time: not a number of seconds ({value!r})") from None
    if t < 0 or t != int(t):
        raise DatasetError(f"{path}: {where}.time: must be a whole second >= 0, got {value!r}")
    if duration is not None and t >= duration:
        raise DatasetError(f"{path}: {where}.time: {int(t)}s is past the video's end ({duration}s)")
    return int(t)


def _items(path: Path, data: dict, key: str, duration: int) -> list[Item]:
    raw = data.get(key, [])
    if not isinstance(raw, list):
        raise DatasetError(f"{path}: {key}: must be a list of {{content, time}}")
    out = []
    for i, r in enumerate(raw):
        where = f"{key}[{i}]"
        if not isinstance(r, dict):
            raise DatasetError(f"{path}: {where}: must be an object with content and time")
        content = r.get("content")
        if not isinstance(content, str) or not content.strip():
            raise DatasetError(f"{path}: {where}.content: missing or empty")
        item = Item(_time(path, where, r.get("time"), duration), content, bool(r.get("delegate", False)))
        if item.delegate and DELEGATION not in content:
            raise DatasetError(f"{path}: {where}.content: a delegated item must read 'note {DELEGATION} question'")
        out.append(item)
    return out


def read_annotation(path: str | Path) -> Annotation:
    """One annotation, validated; raises DatasetError naming the file and the field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: must be a JSON object")
    vp = data.get("video_path")
    if not isinstance(vp, str) or not vp:
        raise DatasetError(f"{path}: video_path: missing")
    video = Path(vp) if Path(vp).is_absolute() else path.parent / vp
    if not video.is_file():
        raise DatasetError(f"{path}: video_path: {video} not found")
    real = video_seconds(video)
    if real <= 0:
        raise DatasetError(f"{path}: video_path: {video} cannot be decoded")
    duration = data.get("duration", real)
    if not isinstance(duration, int | float) or duration <= 0:
        raise DatasetError(f"{path}: duration: must be a positive number of seconds, got {duration!r}")
    duration = min(int(duration), real)
    questions = _items(path, data, "question", duration)
    responses = _items(path, data, "response", duration)
    seen: set[int] = set()
    for i, r in enumerate(responses):
        if r.t in seen:
            raise DatasetError(f"{path}: response[{i}].time: a second has one decision, {r.t}s has two")
        seen.add(r.t)
    weights = {}
    for k, v in (data.get("weights") or {}).items():
        t = _time(path, f"weights[{k!r}]", k, duration)
        if not isinstance(v, int | float) or v < 0:
            raise DatasetError(f"{path}: weights[{k!r}]: must be a number >= 0")
        weights[t] = float(v)
    known = {"video_path", "duration", "question", "response", "weights"}
    extra = {k: v for k, v in data.items() if k not in known}
    return Annotation(path, video, duration, questions, responses, weights, extra)


def write_annotation(ann: Annotation, path: str | Path | None = None) -> Path:
    out = Path(path) if path else ann.path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(ann.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")
    return out


def read_dataset(folder: str | Path, skip_bad: bool = False) -> tuple[list[Annotation], list[str]]:
    """Every annotation in ``folder`` (sorted by name) and the error lines of the bad ones.

    Without ``skip_bad`` the first bad file raises DatasetError; with it, bad files are left out and
    reported, and the rest still load.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    anns, errors = [], []
    for p in sorted(folder.glob("*.json")):
        if p.name in MANIFESTS:
            continue
        try:
            anns.append(read_annotation(p))
        except DatasetError as exc:
            if not skip_bad:
                raise
            errors.append(str(exc))
    if not anns and not errors:
        raise DatasetError(f"{folder}: no annotations (*.json) found")
    return anns, errors
