"""Typed events: one JSON encoding (schema v1, as the old logs hold it), decoded back to the same type."""

import json

import pytest

from engine.events import (
    CLASSES,
    DecisionMade,
    EventBus,
    EventType,
    SessionEnded,
    Skipped,
    decode,
)

# Lines as release 0.1 wrote them (before events were typed).
OLD_LOG = [
    '{"v":1,"session":"s1","t":0.0,"wall":"2026-11-01T10:00:00.000+00:00","type":"session_started","source":"demo",'
    '"backend":"heuristic","mode":"prompt","max_pixels":200704,"virtual_clock":true}',
    '{"v":1,"session":"s1","t":3.0,"wall":"2026-11-01T10:00:03.000+00:00","type":"decision","action":"delegate",'
    '"text":"One moment.","latency_ms":{"capture":0.1,"prefill":2.0,"decide":3.0,"total":5.1},'
    '"tokens":{"context":120,"new":9},"kv_bytes":{"fast":0,"offload":0},"delegate_query":"why?","change":0.25}',
    '{"v":1,"session":"s1","t":4.0,"wall":"2026-11-01T10:00:04.000+00:00","type":"skipped","reason":"busy"}',
    '{"v":1,"session":"s1","t":5.0,"wall":"2026-11-01T10:00:05.000+00:00","type":"session_ended","ticks":5,'
    '"decisions":4,"responses":1,"skipped":1,"error":null,"frames_dropped":0}',
]


def test_old_logs_decode_to_typed_events_and_encode_back_to_the_same_json():
    bus = EventBus("s1")
    for line in OLD_LOG:
        old = json.loads(line)
        d = decode(old)
        assert type(d.event) is CLASSES[EventType(old["type"])] and d.extra == {}
        again = bus.publish(d.t, d.event)
        strip = ("wall",)  # the wall clock is when it was written
        assert {k: v for k, v in again.items() if k not in strip} == {k: v for k, v in old.items() if k not in strip}
        assert list(again) == list(old)  # same key order: byte-compatible lines


def test_decision_optional_fields_are_left_out_and_unknown_keys_kept():
    bus = EventBus("s2")
    seen = []
    bus.subscribe(seen.append)
    bus.publish(1, DecisionMade(action="silence"))
    assert "delegate_query" not in seen[0] and "suppressed" not in seen[0] and seen[0]["type"] == EventType.DECISION
    enc = bus.publish(2, Skipped(reason="paused"), note="from the future")
    d = decode(enc)
    assert d.event == Skipped(reason="paused") and d.extra == {"note": "from the future"}
    assert bus.publish(3, SessionEnded())["error"] is None  # readers expect the key


def test_unknown_types_and_fields_are_refused():
    bus = EventBus("s3")
    with pytest.raises(ValueError):
        bus.emit(0, "shouting", text="x")
    with pytest.raises(ValueError):
        decode({"type": "shouting", "t": 0})
    with pytest.raises(TypeError):
        DecisionMade(loudness=3)


def test_a_broken_subscriber_does_not_stop_the_others():
    bus = EventBus("s4")
    got = []

    def broken(_):
        raise RuntimeError("UI went away")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    bus.publish(0, Skipped(reason="no_frame"))
    assert len(got) == 1 and "UI went away" in bus.subscriber_errors[0]
