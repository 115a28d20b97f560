"""How many concurrent 1 fps streams one model holds: 1, 2, 4, 8, 16 streams, each a real-time session built by
``app.wiring.build_streams`` (its own clip decoder, memory, store), against

  local-smollm2   one in-process llama.cpp model (SmolLM2-135M, text only), one sequence per stream
  local-vlm       one in-process llama.cpp model (the tiny random Qwen2.5-VL GGUF + mmproj, frames)
  server-smollm2  a real ``python -m llama_cpp.server`` (SmolLM2) on loopback through the openai backend,
                  one conversation (x-session-id) per stream, requests sent concurrently
  remote          an OpenAI-compatible server already running (``--url``, ``--model``; frames sent), e.g.
                  vLLM serving JoyAI-VL-Interaction on a GPU: how the one-GPU estimate below is checked

Per stream and second: the tick latency (from the moment the second ends to its record: waiting for a turn
plus the model's work), whether it was skipped(busy); per run the p50/p95 over all streams, the skipped
fraction, the memory (RSS of this process for local, of the server process for server) and the measured
per-tick work (new tokens prefilled, prefill / decide ms). The answer per backend: the largest N with
p95 < 1 s and no skipped second. Then the one-GPU vLLM model for the 8B (``gpu_model``), from the
measured token counts per tick and the stated hardware assumptions.

    flock /tmp/bench.lock .venv/bin/python benchmarks/many_streams.py [--seconds 20] [--streams 1,2,4,8,16]
        [--parts local-smollm2,local-vlm,server-smollm2] [--json out.json]
    .venv/bin/python benchmarks/many_streams.py --parts remote --url http://gpu-box:8000/v1 --model joyai \
        --streams 16,32,64,128,160,192 --seconds 60 --max-pixels 49152 --chunk-ticks 20 --p95-s 0.2

The tiny VLM pair is read from $PRESENCE_TEST_ASSETS (skipped when absent). Load matters: quote ``uptime``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clips import slides_clip  # noqa: E402

MAX_TOKENS = 16  # a decision is a marker and at most one short line
N_CTX = 1024  # per stream: a 20-30 s run stays well inside it


def settings_for(part: str, server_url: str = "", model: str = "", max_pixels: int = 112 * 112, chunk_ticks: int = 0):
    from app.config import Settings
    from engine.backends.lite import smollm2_path

    s = Settings()
    s.backend.max_tokens = MAX_TOKENS
    s.backend.n_ctx = N_CTX
    s.backend.seed = 0
    s.backend.llamacpp.n_threads = 1
    s.capture.max_pixels = max_pixels
    if chunk_ticks:
        s.memory.chunk_ticks = chunk_ticks
    s.voice.speak = s.voice.listen = False
    if part == "local-smollm2":
        s.backend.name, s.backend.model = "llamacpp", smollm2_path()
    elif part == "local-vlm":
        assets = Path(os.environ.get("PRESENCE_TEST_ASSETS", ""))
        s.backend.name, s.backend.model = "llamacpp", str(assets / "qwen25vl-tiny-f32.gguf")
        s.backend.mmproj = str(assets / "qwen25vl-tiny-mmproj-f32.gguf")
    elif part == "remote":
        s.backend.name, s.backend.url, s.backend.model = "openai", server_url, model
        s.backend.timeout_s = 30
    else:
        s.backend.name, s.backend.url, s.backend.model = "openai", server_url, "smollm2"
        s.backend.openai.images = False
        s.backend.timeout_s = 60
        s.backend.openai.retries = 0
    return s


def run_streams(settings, shared, n: int, seconds: int, clip: Path, rss, warmup: int = 0) -> dict:
    """One run of ``n`` real-time streams for ``seconds``; latency and skip figures over all streams, from
    second ``warmup`` on (the first seconds carry every stream's chunk prefix: the system prompt)."""
    from app.wiring import build_streams

    out = Path(tempfile.mkdtemp(prefix="presence-many-"))
    built = build_streams(settings, [str(clip)] * n, duration=seconds, backend=shared, store=str(out / "s.sqlite"),
                          report=lambda line: print(line, file=sys.stderr))
    m = built.manager
    lat: list[float] = []
    skipped = [0]
    failed = [0]  # seconds skipped because the backend failed (an error event each)
    work = {"prefill_ms": [], "decide_ms": [], "new_tokens": [], "context": []}
    for i, one in enumerate(built.streams):
        clock = m.clock(i)

        def record(e, clock=clock):
            if e.get("t", 0) < warmup:
                return
            if e["type"] == "decision":
                lat.append(clock.now() - (e["t"] + 1))
                work["prefill_ms"].append(e["latency_ms"]["prefill"])
                work["decide_ms"].append(e["latency_ms"]["decide"])
                work["new_tokens"].append(e["tokens"]["new"])
                work["context"].append(e["tokens"]["context"])
            elif e["type"] == "skipped" and e["reason"] == "busy":
                skipped[0] += 1
            elif e["type"] == "skipped" and e["reason"] == "backend_error":
                failed[0] += 1

        one.bus.subscribe(record)
    peak = [rss()]
    t0 = time.perf_counter()
    import threading

    done = threading.Event()

    def sample_rss():
        while not done.wait(0.5):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    m.run()
    done.set()
    wall = time.perf_counter() - t0
    for one in built.streams:  # the views and stores; the shared model stays loaded for the next N
        if one is not None:
            one.close()
    records = len(lat) + skipped[0] + failed[0]
    q = np.percentile(lat, [50, 95]) if lat else [float("nan")] * 2
    return {
        "streams": n, "seconds": seconds, "warmup": warmup, "wall_s": round(wall, 1), "records": records,
        "tick_p50_s": round(float(q[0]), 3), "tick_p95_s": round(float(q[1]), 3),
        "skipped_fraction": round(skipped[0] / max(records, 1), 3),
        "failed_fraction": round(failed[0] / max(records, 1), 3), "rss_mb": round(peak[0] / 2**20),
        "prefill_ms_p50": round(float(np.median(work["prefill_ms"])), 1) if lat else None,
        "decide_ms_p50": round(float(np.median(work["decide_ms"])), 1) if lat else None,
        "new_tokens_p50": int(np.median(work["new_tokens"])) if lat else None,
        "context_tokens_max": int(max(work["context"])) if lat else None,
        "errors": [e for e in m.errors if e],
    }


def bench_part(part: str, streams: list[int], seconds: int, clip: Path, url: str = "", model: str = "",
               max_pixels: int = 112 * 112, chunk_ticks: int = 0, warmup: int = 0) -> list[dict]:
    import psutil

    from app.wiring import build_backend

    server = None
    if part.startswith("server"):
        from engine.backends.lite import smollm2_path
        from tests.llama_server import start_llama_server

        server = start_llama_server(smollm2_path(), n_ctx=N_CTX * max(streams), n_threads=1, alias="smollm2")
        proc = psutil.Process(server.proc.pid)

        def rss():
            return proc.memory_info().rss
    else:  # in-process: this process; remote: the server's memory is not visible from here (0)
        me = psutil.Process()

        def rss():
            return me.memory_info().rss if part != "remote" else 0
    settings = settings_for(part, server.url if server else url, model, max_pixels, chunk_ticks)
    rows = []
    try:
        shared = build_backend(settings)
        print(f"# {part}: loaded, rss {rss() / 2**20:.0f} MB", file=sys.stderr)
        for n in streams:
            row = run_streams(settings, shared, n, seconds, clip, rss, warmup)
            row["part"] = part
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
        shared.close()
    finally:
        if server is not None:
            server.stop()
    return rows


def largest_ok(rows: list[dict], p95_s: float = 1.0) -> int:
    ok = [r["streams"] for r in rows if r["tick_p95_s"] < p95_s and r["skipped_fraction"] == 0
          and r["failed_fraction"] == 0 and not r["errors"]]
    return max(ok, default=0)


# --- the one-GPU vLLM model ------------------------------------------------------------------------
# Hardware and model figures are stated, not measured here (no GPU with the 8B on this machine):
GPUS = {"H100 SXM 80 GB": {"bf16_tflops": 989.0, "mfu": 0.4, "hbm_tb_s": 3.35, "hbm_gb": 80},
        "H200 141 GB": {"bf16_tflops": 989.0, "mfu": 0.4, "hbm_tb_s": 4.8, "hbm_gb": 141}}
# JoyAI-VL-Interaction (Qwen3-VL-8B): 36 layers x 8 KV heads x 128 dims x (K, V) x bf16 = 144 KiB = 147.5 kB per token
MODEL_8B = {"params_b": 8.2, "weights_gb": 17.0, "kv_kb_per_token": 147.5, "vit_params_b": 0.6}
VISION_TOKENS = {"256x192": 72, "448x448": 256}  # one frame's tokens after the 2x2 merge (docs/remote.md)
UTILISATION = 0.8  # the GPU kept below this busy fraction so queueing leaves p95 near one tick's work


def gpu_model(gpu: dict, vision_tokens: int, text_tokens: int, decode_tokens: int, chunk_ticks: int = 200,
              p95_budget_s: float = 0.2) -> dict:
    """Streams one GPU holds at 1 fps. Per stream and second: prefill of ``vision_tokens + text_tokens``
    (compute-bound: 2 FLOP per parameter per token at ``mfu``, plus the ViT on 4 patches per vision token) and
    ``decode_tokens`` batched decode steps (bandwidth-bound: the weights once per step for the whole batch,
    plus each stream's KV cache, at its mean length over a chunk)."""
    compute = gpu["bf16_tflops"] * 1e12 * gpu["mfu"]
    prefill_s = (2 * MODEL_8B["params_b"] * 1e9 * (vision_tokens + text_tokens)
                 + 2 * MODEL_8B["vit_params_b"] * 1e9 * 4 * vision_tokens) / compute
    per_tick_tokens = vision_tokens + text_tokens + decode_tokens
    kv_gb_mean = chunk_ticks / 2 * per_tick_tokens * MODEL_8B["kv_kb_per_token"] / 1e6
    kv_gb_peak = 2 * kv_gb_mean

    def step_s(b: int) -> float:
        return (MODEL_8B["weights_gb"] + b * kv_gb_mean) / (gpu["hbm_tb_s"] * 1e3)

    best, bound = 0, "compute"
    for b in range(1, 5000):
        # streams sit at different points of their chunks, so together they hold about b x the mean KV
        if MODEL_8B["weights_gb"] + b * kv_gb_mean > gpu["hbm_gb"] * 0.9:
            bound = "memory (KV cache)"
            break
        if b * prefill_s + decode_tokens * step_s(b) > UTILISATION:
            bound = "compute + bandwidth"
            break
        if prefill_s + decode_tokens * step_s(b) > p95_budget_s:
            bound = "latency"
            break
        best = b
    return {"prefill_ms": round(prefill_s * 1000, 2), "decode_step_ms": round(step_s(max(best, 1)) * 1000, 2),
            "kv_gb_peak_per_stream": round(kv_gb_peak, 2), "streams": best, "bound": bound}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5, help="first seconds left out of the figures")
    ap.add_argument("--streams", default="1,2,4,8,16")
    ap.add_argument("--parts", default="local-smollm2,local-vlm,server-smollm2")
    ap.add_argument("--json", default="")
    ap.add_argument("--url", default="", help="remote: the server's URL")
    ap.add_argument("--model", default="", help="remote: the served model name")
    ap.add_argument("--max-pixels", type=int, default=112 * 112, help="frame size sent to the model")
    ap.add_argument("--chunk-ticks", type=int, default=0, help="memory.chunk_ticks (0 = the default)")
    ap.add_argument("--p95-s", type=float, default=1.0, help="the p95 tick latency a stream count must stay under")
    a = ap.parse_args()
    streams = [int(x) for x in a.streams.split(",")]
    clip = slides_clip(max(1.0, (a.seconds + 5) / 60), seconds_per_slide=10.0, fps=2.0)
    print(f"# load before: {os.getloadavg()}", file=sys.stderr)
    rows: list[dict] = []
    for part in a.parts.split(","):
        if part == "local-vlm" and not (Path(os.environ.get("PRESENCE_TEST_ASSETS", "")) / "qwen25vl-tiny-f32.gguf").is_file():
            print("# local-vlm skipped: PRESENCE_TEST_ASSETS has no tiny Qwen2.5-VL GGUF", file=sys.stderr)
            continue
        rows += bench_part(part, streams, a.seconds, clip, a.url, a.model, a.max_pixels, a.chunk_ticks, a.warmup)
    print(f"# load after: {os.getloadavg()}", file=sys.stderr)
    print(f"{'part':<15} {'N':>3} {'p50 s':>7} {'p95 s':>7} {'skipped':>8} {'failed':>7} {'RSS MB':>7} {'prefill ms':>10} "
          f"{'decide ms':>9} {'new tok':>7} {'load':>5}")
    for r in rows:
        print(f"{r['part']:<15} {r['streams']:>3} {r['tick_p50_s']:>7.3f} {r['tick_p95_s']:>7.3f} "
              f"{r['skipped_fraction']:>8.1%} {r['failed_fraction']:>7.1%} {r['rss_mb']:>7} {r['prefill_ms_p50']!s:>10} {r['decide_ms_p50']!s:>9} "
              f"{r['new_tokens_p50']!s:>7} {r['load']:>5.1f}")
    for part in dict.fromkeys(r["part"] for r in rows):
        best = largest_ok([r for r in rows if r["part"] == part], a.p95_s)
        print(f"largest N with p95 < {a.p95_s:g} s and no skips, {part}: {best}")
    text = [r for r in rows if r["part"] == "local-smollm2" and r["new_tokens_p50"]]
    text_tokens = text[0]["new_tokens_p50"] if text else 20  # measured: one turn's text + its decision
    source = "measured here with SmolLM2" if text else "assumed (run local-smollm2 to measure)"
    print(f"GPU model, JoyAI 8B bf16 on vLLM (stated hardware figures; {text_tokens} text tokens per tick {source}, "
          "4 decision tokens, p95 budget 200 ms):")
    for name, gpu in GPUS.items():
        for frame, vis in VISION_TOKENS.items():
            for chunk in (200, 60, 20):
                est = gpu_model(gpu, vis, text_tokens, decode_tokens=4, chunk_ticks=chunk)
                print(f"  {name:<15} {frame:>7} ({vis:>3} tok) chunk {chunk:>3} ticks: {est['streams']:>4} streams "
                      f"({est['bound']}; prefill {est['prefill_ms']} ms/stream-s, decode step {est['decode_step_ms']} "
                      f"ms, KV {est['kv_gb_peak_per_stream']} GB/stream peak)")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
