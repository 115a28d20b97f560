"""Procedural scenario clips with per-second ground truth (the JoyAI annotation format, extended).

Each clip is a list of per-second screens (rendered once, held for whole seconds), written as an
mp4v video at a low frame rate, and an annotation beside it:

    {"video_name": "counting_00", "video_path": "counting_00.mp4", "task_type": "counting",
     "source": "presence-procedural", "duration": 60, "fps": 2, "seed": 7,
     "question": [{"content": "Tell me when there are five items on the table.", "time": "0"}],
     "response": [{"content": "There are five items now.", "time": "31",
                   "window": [31, 34], "keywords": ["five|5"]}]}

``question`` and ``response`` follow the reference per-second format (times are strings of whole
seconds); ``window`` (inclusive seconds) and ``keywords`` (every entry must appear; ``a|b`` lists
alternatives) are our additions for SW-F1. Seconds outside every window are ones where the right
answer is silence. Generation is deterministic: same seed and spec, same frames and annotations.

A response item with ``"delegate": true`` is one the model should hand to the background brain: its
``content`` is ``note </delegation> question`` (what follows ``</response>`` in the reference's
delegated answer), and only a delegated reply counts for it.

Content split: ``SuiteSpec.content`` = ``train`` draws every content pool (topics, products, signs,
events, secrets, query wordings) without its held-out quarter, ``heldout`` draws only that quarter,
``all`` (the default) uses everything exactly as before the split existed.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.eval import render

Size = tuple[int, int]


@dataclass
class Expected:
    content: str
    time: int
    window: tuple[int, int]  # inclusive stream seconds in which a response counts
    keywords: list[str] = field(default_factory=list)
    delegate: bool = False  # the right reply hands the question to the brain (content: note </delegation> q)


@dataclass
class Clip:
    name: str
    family: str
    duration: int
    screens: list[np.ndarray]  # one RGB frame per second [H, W, 3]; entries may share arrays
    questions: list[tuple[int, str]] = field(default_factory=list)
    responses: list[Expected] = field(default_factory=list)

    def annotation(self, fps: float, seed: int) -> dict:
        return {
            "video_name": self.name, "video_path": f"{self.name}.mp4", "task_type": self.family,
            "source": "presence-procedural", "duration": self.duration, "fps": fps, "seed": seed,
            "question": [{"content": q, "time": str(t)} for t, q in self.questions],
            "response": [{"content": e.content, "time": str(e.time), "window": list(e.window),
                          "keywords": list(e.keywords), **({"delegate": True} if e.delegate else {})}
                         for e in self.responses],
        }


class _Cache:
    """Renders each distinct screen once (a 30-minute clip has few distinct screens)."""

    def __init__(self) -> None:
        self._d: dict[tuple, np.ndarray] = {}

    def get(self, fn: Callable[..., np.ndarray], *args, **kw) -> np.ndarray:
        key = (fn.__name__, args, tuple(sorted(kw.items())))
        if key not in self._d:
            self._d[key] = fn(*args, **kw)
        return self._d[key]


def _hold(screens: list, img: np.ndarray, start: int, end: int) -> None:
    for s in range(max(0, start), min(len(screens), end)):
        screens[s] = img


# --- content pools ---------------------------------------------------------------------------------
TOPICS = [
    ("Volcanoes", ["Magma rises", "Ash and lava"]), ("Glaciers", ["Ice moves slowly", "Valleys form"]),
    ("Gravity", ["Mass attracts mass", "Orbits and tides"]), ("Magnetism", ["North and south", "Compasses"]),
    ("Rainforests", ["Dense canopy", "Rich wildlife"]), ("Earthquakes", ["Plates shift", "Seismic waves"]),
    ("Deserts", ["Little rain", "Hot days cold nights"]), ("Comets", ["Ice and dust", "Long tails"]),
    ("Bacteria", ["Single cells", "Everywhere"]), ("Electricity", ["Current and voltage", "Circuits"]),
    ("Photosynthesis", ["Light to sugar", "Oxygen released"]), ("Tornadoes", ["Rotating storms", "Funnel clouds"]),
]
PRODUCTS = [("Headphones", "$49.99"), ("Blue Kettle", "$24.99"), ("Desk Lamp", "$18.50"),
            ("Backpack", "$35.00"), ("Sneakers", "$59.90"), ("Coffee Mug", "$9.95")]
SIGNS = [("SALIDA", "exit"), ("PELIGRO", "danger"), ("CERRADO", "closed"), ("ABIERTO", "open"),
         ("AUSGANG", "exit"), ("GEFAHR", "danger"), ("EINGANG", "entrance"), ("SORTIE", "exit"),
         ("USCITA", "exit"), ("FARMACIA", "pharmacy"), ("BAHNHOF", "station"), ("BIBLIOTECA", "library")]
EVENTS = [("GOAL! RED 1-0", "goal"), ("YELLOW CARD", "yellow card|card"), ("CORNER KICK", "corner"),
          ("OFFSIDE", "offside"), ("PENALTY", "penalty"), ("FREE KICK", "free kick"),
          ("SUBSTITUTION", "substitution")]
SECRETS = [("Wi-Fi password", "TIGER42"), ("Locker code", "4817"), ("Parking spot", "B12"),
           ("Door code", "7395"), ("Gate number", "C27"), ("Room number", "318")]
NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}
PROBLEMS = [("17 x 23 = ?", "What is 17 times 23?"), ("sqrt(2401) = ?", "What is the square root of 2401?"),
            ("2^13 = ?", "What is 2 to the power 13?"), ("19 x 37 = ?", "What is 19 times 37?"),
            ("999 / 27 = ?", "What is 999 divided by 27?"), ("13! / 11! = ?", "What is 13 factorial over 11 factorial?"),
            ("48 x 52 = ?", "What is 48 times 52?"), ("7^4 = ?", "What is 7 to the power 4?")]
DELEGATE_NOTES = ["Let me check that.", "One moment, I will work that out.", "Let me hand that to the solver.",
                  "I will ask for help with that."]
# Query wordings per family: index 0 is the wording every suite used before the content split.
WORDINGS = {
    "lecture": ["Tell me the title of each new slide.", "Say the title whenever a new slide appears.",
                "Announce each new slide's title.", "Let me know the title of every new slide."],
    "monitoring": ["Alert me when someone comes to the door.", "Tell me if anybody shows up at the door.",
                   "Let me know when a visitor arrives.", "Warn me when a person appears at the door."],
    "counting": ["Tell me when there are {n} items on the table.", "Let me know once {n} items are on the table.",
                 "Say when the table holds {n} items.", "Tell me as soon as I can see {n} items on the table."],
    "translation": ["Translate any sign that appears into English.", "Tell me what each sign means in English.",
                    "Give me the English for every sign you see.", "When a sign appears, translate it for me."],
    "commentary": ["Commentate the match as it happens.", "Call out what happens in the match.",
                   "Give me live commentary on the game.", "Tell me about every event in the match."],
    "delegation": ["If a hard problem appears, hand it to the solver.", "Send any difficult sum on screen to the solver.",
                   "Pass hard calculations you see to the background solver.",
                   "When a tricky problem shows up, delegate it."],
}

HELDOUT_EVERY = 4  # items 3, 7, 11, … of every pool (a quarter) never appear in ``train`` suites
CONTENT_SPLITS = ("all", "train", "heldout")
_split = "all"  # set by generate_clip for the duration of one clip


def pool(items: list) -> list:
    """The part of a content pool the current split may use."""
    if _split == "all":
        return items
    held = [x for i, x in enumerate(items) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    return held if _split == "heldout" else [x for x in items if x not in held]


def wording(rng: random.Random, family: str, **kw) -> str:
    """The family's query text: the original wording for ``all`` (no draw, so old suites are
    unchanged), else one drawn from the split's share of the wordings."""
    choices = WORDINGS[family] if _split == "all" else pool(WORDINGS[family])
    text = choices[0] if _split == "all" else rng.choice(choices)
    return text.format(**kw)


def _slides_background(rng: random.Random, c: _Cache, screens: list, start: int, end: int,
                       size: Size, lo: int = 10, hi: int = 20) -> list[tuple[int, str]]:
    """Fill [start, end) with slides held lo–hi s each; returns (start second, title) per slide."""
    out, t = [], start
    topics = pool(TOPICS)
    order = list(range(len(topics)))
    rng.shuffle(order)
    i = 0
    while t < end:
        title, bullets = topics[order[i % len(order)]]
        hold = rng.randint(lo, hi)
        _hold(screens, c.get(render.slide, title, tuple(bullets), size=size), t, min(end, t + hold))
        out.append((t, title))
        t, i = t + hold, i + 1
    return out


# --- families ----------------------------------------------------------------------------------
def lecture(rng: random.Random, d: int, size: Size) -> Clip:
    c, screens = _Cache(), [None] * d
    slides = _slides_background(rng, c, screens, 0, d, size)
    clip = Clip("", "lecture", d, screens, [(0, wording(rng, "lecture"))])
    for t, title in slides:
        if t + 2 < d:
            clip.responses.append(Expected(f"New slide: {title}", t, (t, min(d - 1, t + 4)), [title]))
    return clip


def shopping(rng: random.Random, d: int, size: Size) -> Clip:
    c, screens = _Cache(), [None] * d
    prods = (PRODUCTS if _split == "heldout" else pool(PRODUCTS))[:]
    rng.shuffle(prods)
    if _split == "heldout":  # the product whose price is said is held out; the others are scenery
        held = pool(PRODUCTS)
        k = next(i for i, p in enumerate(prods) if p in held)
        prods[1], prods[k] = prods[k], prods[1]
    target, asked, other = prods[0], prods[1], prods[2]
    t, pages = 0, []
    while t < d:  # browse: cycle through the products, 6–10 s each
        p = prods[len(pages) % len(prods)]
        hold = rng.randint(6, 10)
        pages.append((t, min(d, t + hold), p))
        t += hold
    for s, e, p in pages:
        _hold(screens, c.get(render.app_screen, p[0], p[1], size=size), s, e)
    # a price question while `asked` is on screen (early), then a sold-out watch for `target`
    s_ask = next(s for s, e, p in pages if p == asked and e - s >= 6)
    q1 = s_ask + 1
    q2 = q1 + 8
    t_other = int(q2 + 0.3 * (d - q2))  # another product sells out first: the right answer is silence
    t_sold = int(q2 + 0.65 * (d - q2))
    _hold(screens, c.get(render.app_screen, other[0], other[1], True, size=size), t_other, t_other + 6)
    _hold(screens, c.get(render.app_screen, target[0], target[1], True, size=size), t_sold, t_sold + 8)
    price = asked[1].lstrip("$")
    clip = Clip("", "shopping", d, screens, [(q1, f"How much is the {asked[0]}?"),
                                             (q2, f"Tell me when the {target[0]} is sold out.")])
    clip.responses.append(Expected(f"The {asked[0]} costs {asked[1]}.", q1, (q1, q1 + 5), [price]))
    clip.responses.append(Expected(f"The {target[0]} is sold out.", t_sold, (t_sold, t_sold + 4), ["sold out"]))
    return clip


def monitoring(rng: random.Random, d: int, size: Size) -> Clip:
    c = _Cache()
    screens = [c.get(render.room, False, size=size)] * d
    t = int(d * rng.uniform(0.5, 0.85))
    _hold(screens, c.get(render.room, True, size=size), t, t + 8)
    clip = Clip("", "monitoring", d, screens, [(0, wording(rng, "monitoring"))])
    clip.responses.append(Expected("Someone is at the door.", t, (t, t + 3)))
    return clip


def counting(rng: random.Random, d: int, size: Size) -> Clip:
    c = _Cache()
    screens = [c.get(render.table, 0, size=size)] * d
    target = rng.choice([3, 4, 5, 6])
    t, times = rng.randint(3, 6), []
    for n in range(1, 9):
        if t >= d:
            break
        _hold(screens, c.get(render.table, n, size=size), t, d)
        times.append(t)
        t += rng.randint(4, 8)
    word = NUMBER_WORDS[target]
    clip = Clip("", "counting", d, screens, [(0, wording(rng, "counting", n=word))])
    if len(times) >= target:
        te = times[target - 1]
        clip.responses.append(Expected(f"There are {word} items now.", te, (te, te + 3), [f"{word}|{target}"]))
    return clip


def time_awareness(rng: random.Random, d: int, size: Size) -> Clip:
    c, screens = _Cache(), [None] * d
    _slides_background(rng, c, screens, 0, d, size, 12, 25)
    n, phrase, kw = rng.choice([(20, "20 seconds", "20|twenty"), (30, "30 seconds", "30|thirty"),
                                (45, "45 seconds", "45|forty-five|forty five"), (60, "one minute", "minute|60")])
    q = rng.randint(2, 8)
    te = q + n
    clip = Clip("", "time", d, screens, [(q, f"Tell me when {phrase} have passed." if n != 60
                                          else "Tell me when one minute has passed.")])
    if te + 2 < d:
        clip.responses.append(Expected(f"{phrase.capitalize()} have passed.", te, (te - 1, te + 2), [kw]))
    return clip


def long_memory(rng: random.Random, d: int, size: Size) -> Clip:
    c, screens = _Cache(), [None] * d
    label, value = rng.choice(pool(SECRETS))
    value = value if rng.random() < 0.5 else value[:-1] + str(rng.randint(0, 9))
    _hold(screens, c.get(render.note, f"{label}: {value}", "Remember this", size=size), 0, 12)
    _slides_background(rng, c, screens, 12, d, size)
    q = d - 15
    clip = Clip("", "memory", d, screens, [(q, f"What was the {label.lower()} shown at the start?")])
    clip.responses.append(Expected(f"The {label.lower()} was {value}.", q, (q, q + 5), [value]))
    return clip


def translation(rng: random.Random, d: int, size: Size) -> Clip:
    c = _Cache()
    screens = [c.get(render.sign, "", size=size)] * d
    signs = pool(SIGNS)[:]
    rng.shuffle(signs)
    clip = Clip("", "translation", d, screens, [(0, wording(rng, "translation"))])
    t, i, last = rng.randint(3, 6), 0, ""
    while t + 6 < d and i < len(signs):
        nxt = next((j for j in range(i, len(signs)) if signs[j][1] != last), i)  # no meaning twice in a row
        signs[i], signs[nxt] = signs[nxt], signs[i]
        word, english = signs[i]
        last = english
        _hold(screens, c.get(render.sign, word, size=size), t, t + 8)
        clip.responses.append(Expected(f"The sign says {english.split('|')[0]}.", t, (t, t + 4), [english]))
        t, i = t + 8 + rng.randint(6, 12), i + 1
    return clip


def commentary(rng: random.Random, d: int, size: Size) -> Clip:
    c = _Cache()
    xs = [0.5 + 0.45 * np.sin(s / 7.0 + rng.random()) for s in range(d)]
    screens = [c.get(render.pitch, round(float(x), 2), size=size) for x in xs]
    clip = Clip("", "commentary", d, screens, [(0, wording(rng, "commentary"))])
    t, order = rng.randint(8, 15), []
    while t + 5 < d:
        if not order:  # a shuffled cycle: the same event never comes twice in a row within a cycle
            order = pool(EVENTS)[:]
            rng.shuffle(order)
            if clip.responses and order[-1][1] == clip.responses[-1].keywords[0]:
                order[0], order[-1] = order[-1], order[0]
        banner, kw = order.pop()
        goals = sum(r.keywords[0] == "goal" for r in clip.responses)
        if kw == "goal":  # a repeated event type is a new event: its banner says what changed
            banner = f"GOAL! RED {goals + 1}-0"
        elif kw.startswith("yellow"):
            banner = f"YELLOW CARD #{rng.randint(2, 23)}"
        for s in range(t, min(d, t + 5)):
            screens[s] = c.get(render.pitch, round(float(xs[s]), 2), banner, size=size)
        clip.responses.append(Expected(f"{banner.title()}!", t, (t, t + 4), [kw]))
        t += rng.randint(15, 30)
    return clip


def distractor(rng: random.Random, d: int, size: Size) -> Clip:
    c, screens = _Cache(), [None] * d
    if rng.random() < 0.5:
        _slides_background(rng, c, screens, 0, d, size, 8, 15)
        query = "Tell me when the word EMERGENCY appears."
    else:
        t = 0
        while t < d:
            p = rng.choice(pool(PRODUCTS))
            hold = rng.randint(6, 12)
            _hold(screens, c.get(render.app_screen, p[0], p[1], size=size), t, t + hold)
            t += hold
        query = "Tell me when anything is sold out."
    return Clip("", "distractor", d, screens, [(0, query)])


def delegation(rng: random.Random, d: int, size: Size) -> Clip:
    """Hard problems appear on a note; the right reply hands each one to the background brain."""
    c = _Cache()
    screens = [c.get(render.note, "Working notes", "", size=size)] * d
    problems = pool(PROBLEMS)[:]
    rng.shuffle(problems)
    clip = Clip("", "delegation", d, screens, [(0, wording(rng, "delegation"))])
    t, i = rng.randint(5, 10), 0
    while t + 8 < d:
        shown, question = problems[i % len(problems)]
        _hold(screens, c.get(render.note, shown, "Problem", size=size), t, t + 8)
        note = rng.choice(pool(DELEGATE_NOTES))
        clip.responses.append(Expected(f"{note} </delegation> {question}", t, (t, t + 4), [], delegate=True))
        t, i = t + 8 + rng.randint(8, 16), i + 1
    return clip


FAMILIES: dict[str, Callable[[random.Random, int, Size], Clip]] = {
    "lecture": lecture, "shopping": shopping, "monitoring": monitoring, "counting": counting,
    "time": time_awareness, "memory": long_memory, "translation": translation,
    "commentary": commentary, "distractor": distractor, "delegation": delegation,
}


# --- suite ------------------------------------------------------------------------------------------
@dataclass
class ClipSpec:
    family: str
    duration: int
    count: int = 1
    quick: bool = False  # part of the --quick subset


@dataclass
class SuiteSpec:
    seed: int = 7
    size: Size = (320, 240)
    fps: float = 2.0
    clips: list[ClipSpec] = field(default_factory=list)
    content: str = "all"  # all | train | heldout (the held-out quarter of every content pool)


DEFAULT_CLIPS = [
    ClipSpec("lecture", 90, 2, True), ClipSpec("shopping", 120, 2, True), ClipSpec("monitoring", 60, 1, True),
    ClipSpec("monitoring", 1800, 1), ClipSpec("counting", 60, 2, True), ClipSpec("time", 90, 2, True),
    ClipSpec("memory", 300, 1, True), ClipSpec("memory", 600, 1), ClipSpec("translation", 75, 2, True),
    ClipSpec("commentary", 120, 1, True), ClipSpec("commentary", 300, 1), ClipSpec("distractor", 90, 2, True),
    ClipSpec("distractor", 30, 1), ClipSpec("delegation", 90, 1, True),
]


def default_spec(seed: int = 7) -> SuiteSpec:
    return SuiteSpec(seed=seed, clips=list(DEFAULT_CLIPS))


def load_spec(path: str | Path) -> SuiteSpec:
    """Read a suite definition (TOML): ``[suite]`` seed/size/fps and ``[[clip]]`` family/duration/count/quick."""
    import tomllib

    data = tomllib.loads(Path(path).read_text())
    s = data.get("suite", {})
    clips = []
    for c in data.get("clip", []):
        if c.get("family") not in FAMILIES:
            raise ValueError(f"{path}: unknown family {c.get('family')!r} (choose from {', '.join(FAMILIES)})")
        if not 30 <= int(c.get("duration", 0)) <= 3600:
            raise ValueError(f"{path}: clip duration must be 30–3600 s, got {c.get('duration')!r}")
        clips.append(ClipSpec(c["family"], int(c["duration"]), int(c.get("count", 1)), bool(c.get("quick", False))))
    content = str(s.get("content", "all"))
    if content not in CONTENT_SPLITS:
        raise ValueError(f"{path}: content must be one of {', '.join(CONTENT_SPLITS)}, got {content!r}")
    return SuiteSpec(seed=int(s.get("seed", 7)), size=tuple(s.get("size", (320, 240))), fps=float(s.get("fps", 2.0)),
                     clips=clips, content=content)


def generate_clip(family: str, index: int, duration: int, seed: int, size: Size = (320, 240),
                  content: str = "all") -> Clip:
    """One clip, deterministic in (family, index, duration, seed, content split)."""
    global _split
    if content not in CONTENT_SPLITS:
        raise ValueError(f"content must be one of {', '.join(CONTENT_SPLITS)}, got {content!r}")
    rng = random.Random(zlib.crc32(f"{family}:{index}:{duration}:{seed}".encode()))
    _split = content
    try:
        clip = FAMILIES[family](rng, duration, size)
    finally:
        _split = "all"
    clip.name = f"{family}_{duration}s_{index:02d}"
    blank = np.full((size[1], size[0], 3), 128, np.uint8)
    clip.screens = [s if s is not None else blank for s in clip.screens]
    return clip


def write_clip_video(clip: Clip, path: Path, fps: float) -> None:
    """mp4v at ``fps``: every second's screen is held for round(fps) frames."""
    h, w = clip.screens[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path}")
    per = max(1, int(round(fps)))
    last_id, bgr = None, None
    for img in clip.screens:
        if id(img) != last_id:  # convert each distinct screen once
            bgr, last_id = cv2.cvtColor(img, cv2.COLOR_RGB2BGR), id(img)
        for _ in range(per):
            writer.write(bgr)
    writer.release()


def make_suite(out_dir: str | Path, spec: SuiteSpec, quick: bool = False,
               progress: Callable[[str], None] | None = None) -> Path:
    """Write every clip (mp4 + annotation json) and ``suite.json`` (the clip list) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for cs in spec.clips:
        if quick and not cs.quick:
            continue
        for i in range(cs.count):
            clip = generate_clip(cs.family, i, cs.duration, spec.seed, spec.size, spec.content)
            write_clip_video(clip, out / f"{clip.name}.mp4", spec.fps)
            (out / f"{clip.name}.json").write_text(json.dumps(clip.annotation(spec.fps, spec.seed), indent=1))
            names.append(clip.name)
            if progress:
                progress(f"{clip.name}: {clip.duration} s, {len(clip.responses)} expected responses")
    manifest = {"seed": spec.seed, "size": list(spec.size), "fps": spec.fps, "quick": quick, "clips": names,
                "content": spec.content,
                "spec": [asdict(c) for c in spec.clips]}
    (out / "suite.json").write_text(json.dumps(manifest, indent=1))
    return out / "suite.json"
