"""WebRTC echo cancellation (livekit's AudioProcessingModule) on a synthetic echo path: no device."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("livekit.rtc", reason="livekit (WebRTC AEC3) is not installed")

from plugins.asr.aec import FRAME, SR, EchoCanceller  # noqa: E402


def rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_the_apps_voice_is_cancelled_and_the_users_voice_is_kept():
    rng = np.random.default_rng(0)
    seconds = 6
    far = (rng.standard_normal(seconds * SR) * 0.1).astype(np.float32)  # what the speaker plays
    delay = int(0.06 * SR)
    echo = np.zeros_like(far)
    echo[delay:] = 0.5 * far[:-delay]  # the room: 60 ms later, half as loud
    user = np.zeros_like(far)
    t = np.arange(SR) / SR
    user[4 * SR:5 * SR] = 0.1 * np.sin(2 * np.pi * 300 * t)  # the user talks at 4–5 s
    aec = EchoCanceller(delay_ms=60)
    cleaned, raw = [], []
    for i in range(0, len(far), FRAME * 2):  # 20 ms blocks, as a mic callback would deliver
        aec.far(far[i:i + FRAME * 2], SR)
        c, r = aec.near(echo[i:i + FRAME * 2] + user[i:i + FRAME * 2])
        cleaned.append(c)
        raw.append(r)
    cleaned, raw = np.concatenate(cleaned), np.concatenate(raw)
    assert len(cleaned) == len(raw) == len(far)
    # for transcription: the cancelled signal while the speaker plays (the app's words stay out)
    np.testing.assert_allclose(raw, cleaned)
    quiet = EchoCanceller()
    _, after = quiet.near(user[4 * SR:4 * SR + FRAME * 4])  # the speaker silent: the raw mic, as is
    np.testing.assert_allclose(after, user[4 * SR:4 * SR + FRAME * 4], atol=1e-6)
    settled = slice(2 * SR, 4 * SR)  # after 2 s of adaptation, before the user speaks
    mic = echo + user
    erle_db = 20 * np.log10(rms(mic[settled]) / max(rms(cleaned[settled]), 1e-9))
    assert erle_db > 20, f"echo only {erle_db:.1f} dB down"
    # the user's tone survives (double talk with the echo): well above the residual echo
    assert rms(cleaned[4 * SR + SR // 4:5 * SR]) > 5 * rms(cleaned[settled])
