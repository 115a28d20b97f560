"""The Qt-free core of Presence (docs/architecture.md §1).

Presence is offline unless the user configures a remote backend or brain: third-party libraries that
phone home on their own are told not to, here, before any of them can be imported (every package of
Presence imports ``engine`` first).
"""

import os

# onnxruntime ≥ 1.29 (rapidocr, Piper) sends a 1DS telemetry event about 10 s after import on Linux;
# this variable is its full opt-out, read once at initialisation (checked: tests/faults/test_no_network.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # huggingface_hub: no usage pings on pulls
