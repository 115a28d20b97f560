import numpy as np

from engine.backends.heuristic import HeuristicBackend, HeuristicOptions, watched_phrase
from engine.context import ChunkPrefix, Turn
from engine.protocol import normalize


def run(frames, options=None, query=""):
    b = HeuristicBackend(options or HeuristicOptions(ocr=False))
    b.start_chunk(ChunkPrefix("sys", ""))
    out = []
    for t, px in enumerate(frames):
        b.observe(Turn(t=t, pixels=px, standing_query=query))
        d = normalize("".join(b.decide()))
        b.commit(d.canonical())
        out.append(d)
    return out


def scene(rng, w=160, h=120):
    """A structured scene: 8×6 random blocks (pixel noise would average out in the thumbnail)."""
    blocks = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return np.kron(blocks, np.ones((h // 6, w // 8, 1), dtype=np.uint8))


def test_sensor_noise_gives_no_response_after_the_first():
    rng = np.random.default_rng(0)
    base = scene(rng).astype(np.int16)
    frames = [np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8) for _ in range(30)]
    actions = [d.action for d in run(frames)]
    assert actions[0] == "response" and actions[1:] == ["silence"] * 29


def test_slow_fade_gives_one_response():
    rng = np.random.default_rng(1)
    a, b = scene(rng).astype(np.float32), scene(rng).astype(np.float32)
    still_a = [a.astype(np.uint8)] * 5
    fade = [((1 - k / 20) * a + (k / 20) * b).astype(np.uint8) for k in range(1, 21)]  # 20 s crossfade
    still_b = [b.astype(np.uint8)] * 10
    actions = [d.action for d in run(still_a + fade + still_b)]
    assert actions[0] == "response"
    assert actions[5:].count("response") == 1  # the whole fade is one change


def test_two_hard_cuts_give_two_responses_with_cooldown():
    rng = np.random.default_rng(2)
    a, b, c = scene(rng), scene(rng), scene(rng)
    frames = [a] * 3 + [b] * 3 + [c] * 3
    resp = [t for t, d in enumerate(run(frames)) if d.action == "response"]
    assert resp == [0, 3, 6]
    resp = [t for t, d in enumerate(run(frames, HeuristicOptions(ocr=False, cooldown_s=5)))
            if d.action == "response"]
    assert resp == [0, 5]  # cut at 3 inside the cooldown → said at 5; the cut at 6 is inside the next one


def test_watched_phrase_parsing():
    assert watched_phrase("tell me when SOLD OUT appears") == "SOLD OUT"
    assert watched_phrase("Let me know if the word 'error' shows up.") == "error"
    assert watched_phrase("alert me as soon as “Checkout complete” is displayed") == "Checkout complete"
    assert watched_phrase("what is on the screen?") == ""


def test_watched_phrase_knows_the_alert_verbs_of_the_one_parser():
    # the heuristic reads watch instructions with lite's parser (engine.perception.instructions)
    assert watched_phrase("ping me when SOLD OUT appears") == "SOLD OUT"
    assert watched_phrase("warn me if the word ERROR appears") == "ERROR"
    assert watched_phrase("tell me when the battery is low") == ""  # a state of a named thing, not a phrase
    assert watched_phrase("Tell me when the word ERROR appears or 2 minutes have passed.") == "ERROR"
