"""A real vision-language model on a plain CPU: per-tick latency at the exact shapes of the small VLMs.

    flock /tmp/bench.lock python benchmarks/cpu_vlm.py [--models smolvlm2-256m,smolvlm2-500m] [--ticks 60]
        [--sizes 512,1024] [--frame-sizes 224,448] [--proj f16] [--long 600] [--threads 2] [--cell-budget-s 300]
        [--min-ticks 5]

Random weights at the published shapes (SmolVLM2-256M / -500M: Idefics3 with a SigLIP-base tower and a Llama
text model; Qwen2.5-VL-3B and Gemma-3-4B on request), built from config by the family builders of
tests/backends/family_models.py, converted with llama.cpp's own converter (``make gguf-converter``) and quantized
as users run them (text Q8_0 / Q4_K_M with llama_cpp.llama_model_quantize; the projector f16 as the published
GGUF projectors are, or ``--proj f32 | q8_0``). Cached under ``~/.cache/presence/bench``
(``$PRESENCE_BENCH_CACHE``). Random
weights make the decisions meaningless but the cost exact — except the decision's length: it is capped at
``--decision-tokens`` (8: a ``</silence>`` is 3-5 tokens), since random weights never stop on their own.

Each tick runs the ``llamacpp`` backend as a session does: observe (the new turn: text + one frame), decide,
commit; a new chunk starts when the next turn would not fit in ``n_ctx`` (8192, the models' context). The split:
``frame`` = the vision encoder plus prefilling the frame's tokens (libmtmd does both in one call), ``text`` =
prefilling the rest of the turn, ``decision`` = decide + commit.

Frame sizes: llama.cpp resizes every frame of an Idefics3 model so its long side is the projector's
``preproc_image_size`` and cuts it into encoder-sized tiles (+ one overview), whatever the captured size; the
cost axis is that size, so the table has one projector per size (512: 1 tile, 1024: 4 tiles, 2048: 16 tiles,
the published models' setting), each + the overview; 2048 only when asked (``--sizes``): on 2 cores one
tick takes minutes. Qwen2.5-VL takes the frame at its own resolution (one token per 28 x 28 px), so its size is
the 4:3 frame's long side (``--frame-sizes``; 448 is the capture's default ``max_pixels``); Gemma 3 takes every
frame at its encoder's 896.

Prints the table with the machine load, then the largest model and size whose p95 is under 1 s and under 2 s,
and runs ``--long`` ticks on the one for 1 s (p50/p95 of the first and last 60 ticks: flat over time?).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.backends.base import BackendConfig, BackendError, LlamaCppOptions  # noqa: E402
from engine.context import ChunkPrefix, Turn  # noqa: E402
from engine.prompts import system_prompt  # noqa: E402
from engine.protocol import normalize  # noqa: E402

CACHE = Path(os.environ.get("PRESENCE_BENCH_CACHE", Path.home() / ".cache" / "presence" / "bench"))
SIGLIP_BASE_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=512, patch_size=16)
SIGLIP_SO400M_896 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                         image_size=896, patch_size=14)


@dataclass(frozen=True)
class Spec:
    """A published checkpoint's shapes (its config.json), the family builder that makes them, and the text
    model's llama.cpp type as users run it."""

    family: str  # smolvlm2 | gemma3 | qwen2.5-vl (tests/backends/family_models.py)
    quant: str
    text: dict
    vision: dict
    extra: dict = field(default_factory=dict)
    # what the table's size is: the projector's long side (SmolVLM2: llama.cpp resizes every frame to it), the
    # frame's long side (Qwen2.5-VL: tokens follow the frame's pixels), or the encoder's fixed side (Gemma 3)
    axis: str = "projector"


def _smolvlm2(hidden: int, inter: int, layers: int, heads: int, kv: int) -> dict:
    return dict(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv, head_dim=64, vocab_size=49280, rope_theta=100000.0,
                max_position_embeddings=8192, tie_word_embeddings=True)


# SmolVLM2: pixel shuffle 4 → 64 tokens per 512 tile; Gemma 3 4B: 256 tokens per 896 frame, 5 local : 1 global
MODELS = {
    "smolvlm2-256m": Spec("smolvlm2", "Q8_0", _smolvlm2(576, 1536, 30, 9, 3), SIGLIP_BASE_512,
                          dict(scale_factor=4, image_seq_len=64)),
    "smolvlm2-500m": Spec("smolvlm2", "Q8_0", _smolvlm2(960, 2560, 32, 15, 5), SIGLIP_BASE_512,
                          dict(scale_factor=4, image_seq_len=64)),
    "gemma-3-4b": Spec("gemma3", "Q4_K_M", dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
                                                num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                                                vocab_size=262208, sliding_window=1024, query_pre_attn_scalar=256,
                                                max_position_embeddings=131072), SIGLIP_SO400M_896,
                       dict(mm_tokens=256), axis="fixed"),
    # Qwen2.5-VL-3B-Instruct: 32-block windowed ViT (full attention every 8th), 2x2 merge → one token per 28 px
    "qwen2.5-vl-3b": Spec("qwen2.5-vl", "Q4_K_M",
                          dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                               num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                               max_position_embeddings=128000,
                               rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                "mrope_section": [16, 24, 24]}),
                          dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                               out_hidden_size=2048, window_size=112, fullatt_block_indexes=[7, 15, 23, 31]),
                          axis="frame"),
}
SIZES = (512, 1024)  # 2048 (the published setting, 17 encodes a frame) with --sizes 512,1024,2048
FRAME_SIZES = (224, 448)  # 448: the capture's default max_pixels (448 x 448) as a 4:3 frame, 448 x 336
FTYPES = {"Q8_0": 7, "Q4_K_M": 15}


def _checkpoint(name: str, spec: Spec) -> Path:
    """Random weights at ``spec``'s shapes as a HF checkpoint (bf16), by the family's test builder."""
    import torch

    from tests.backends.family_models import BUILDERS

    d = CACHE / name / "hf"
    if not (d / "model.safetensors").is_file():  # built beside, then renamed: a stopped build leaves no "hf"
        part = d.with_name("hf.part")
        shutil.rmtree(part, ignore_errors=True)
        BUILDERS[spec.family](part, text=spec.text, vision=spec.vision, dtype=torch.bfloat16, **spec.extra)
        part.rename(d)
    return d


def _full_vocabulary(hf: Path, vocab_size: int) -> None:
    """Pad the test tokenizer with ``<unused_N>`` entries up to ``vocab_size``. llama.cpp's Gemma converter cuts
    the embedding to as many rows as tokenizer.json names (vocab + added tokens) but writes a vocabulary padded to
    the config's size, and llama.cpp then refuses the model (token_embd 409 rows, 262,208 expected)."""
    f = hf / "tokenizer.json"
    tok = json.loads(f.read_text())
    vocab = tok["model"]["vocab"]
    missing = vocab_size - len(vocab) - len(tok["added_tokens"])
    first = max(vocab.values()) + 1
    vocab.update({f"<unused_{i}>": first + i for i in range(max(missing, 0))})
    f.write_text(json.dumps(tok))


def prepare(name: str, spec: Spec, size: int, proj: str = "f16") -> tuple[Path, Path]:
    """(quantized text GGUF, ``proj`` projector for ``size``), built once and cached. Only SmolVLM2's projector
    has a size (Gemma 3's encoder takes every frame at 896)."""
    import llama_cpp

    from training.gguf import _run, converter_dir

    out = CACHE / name
    model, f16 = out / f"{name}-{spec.quant}.gguf", out / f"{name}-f16.gguf"
    mmproj = out / f"{name}-mmproj-{size if spec.axis == 'projector' else 'any'}-{proj}.gguf"
    if not model.is_file() or not mmproj.is_file():
        hf = _checkpoint(name, spec)
        if not model.is_file():
            if spec.family == "gemma3":
                _full_vocabulary(hf, spec.text["vocab_size"])
            _run(converter_dir(), [str(hf), "--outfile", str(f16), "--outtype", "f16"])
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = FTYPES[spec.quant]
            params.nthread = 1  # preparation, not a timed figure: leave the other core to the machine
            rc = llama_cpp.llama_model_quantize(str(f16).encode(), str(model).encode(), params)
            if rc != 0:
                raise SystemExit(f"quantizing {f16.name} to {spec.quant} failed (code {rc})")
            f16.unlink()
        if spec.family == "smolvlm2":  # the projector records the processor's long side: one per size
            cfg_file = hf / "processor_config.json"
            cfg = json.loads(cfg_file.read_text())
            cfg["image_processor"]["size"] = {"longest_edge": size}
            cfg_file.write_text(json.dumps(cfg, indent=2))
        _run(converter_dir(), [str(hf), "--outfile", str(mmproj), "--outtype", proj, "--mmproj"])
    return model, mmproj


def _p(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def run_cell(model: Path, mmproj: Path, ticks: int, threads: int, decision_tokens: int, budget_s: float = 0,
             frame_side: int = 448, min_ticks: int = 5) -> dict:
    """Per-tick latency of the llamacpp backend on ``ticks`` random 4:3 frames ``frame_side`` px wide (fewer, at
    least ``min_ticks``, when the cell has spent ``budget_s``: a 50 s tick would make 60 of them take most of
    the benchmark's time)."""
    from engine.backends.llamacpp import LlamaCppBackend

    b = LlamaCppBackend()
    b.load(BackendConfig(model=str(model), mmproj=str(mmproj), n_ctx=8192, seed=0, greedy=True,
                         llamacpp=LlamaCppOptions(n_threads=threads)))
    gm = b.seq.model
    frame_s = [0.0]
    orig = gm.eval_image

    def timed(*a, **kw):  # the vision encoder + the frame's tokens, timed where libmtmd runs them
        t0 = time.perf_counter()
        try:
            return orig(*a, **kw)
        finally:
            frame_s[0] += time.perf_counter() - t0

    gm.eval_image = timed
    prefix = ChunkPrefix(system=system_prompt("prompt", False), text="")
    rng = np.random.default_rng(0)
    rows = {"frame": [], "text": [], "decision": [], "total": []}
    frames = [rng.integers(0, 256, (frame_side * 3 // 4, frame_side, 3), dtype=np.uint8) for _ in range(4)]
    n_img = b.seq.image_tokens(frames[0])
    b.start_chunk(prefix)
    try:
        start = time.perf_counter()
        for t in range(ticks):
            if budget_s and t >= min_ticks and time.perf_counter() - start > budget_s:
                break
            turn = Turn(t=t, pixels=frames[t % 4])
            if b.seq.n_cells + n_img + 64 + 128 > b.seq.n_ctx:
                b.start_chunk(prefix)  # a chunk boundary, as the session's memory makes one
            frame_s[0] = 0.0
            t0 = time.perf_counter()
            b.observe(turn)
            t1 = time.perf_counter()
            raw = "".join(b.decide(decision_tokens))
            b.commit(normalize(raw).canonical())
            t2 = time.perf_counter()
            rows["frame"].append(frame_s[0])
            rows["text"].append(t1 - t0 - frame_s[0])
            rows["decision"].append(t2 - t1)
            rows["total"].append(t2 - t0)
    except BackendError as exc:
        rows["error"] = str(exc)
    finally:
        b.close()
    rows["image_tokens"] = n_img
    rows["ticks"] = len(rows["total"])
    return rows


def _row(name: str, size: str, r: dict) -> str:
    cells = " ".join(f"{_p(r[k], 50) * 1000:7.0f} {_p(r[k], 95) * 1000:7.0f}" for k in ("frame", "text", "decision"))
    return (f"{name:18} {size:>11} {r['image_tokens']:6d}  {cells}  {_p(r['total'], 50) * 1000:7.0f} "
            f"{_p(r['total'], 95) * 1000:7.0f}  {r['ticks']:5d}")


def cells(name: str, a) -> list[tuple[int, int, str]]:
    """(projector size, frame side, the table's size label) for each of ``name``'s cells."""
    spec = MODELS[name]
    if spec.axis == "projector":
        return [(s, 448, f"proj {s}") for s in map(int, a.sizes.split(","))]
    if spec.axis == "frame":
        return [(0, s, f"{s}x{s * 3 // 4}") for s in map(int, a.frame_sizes.split(","))]
    side = spec.vision["image_size"]
    return [(side, 448, f"enc {side}")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smolvlm2-256m,smolvlm2-500m",
                    help=f"of {', '.join(MODELS)} (gemma-3-4b: about 9 GB of RAM to build, 3 GB to run)")
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="SmolVLM2: the projector's long side")
    ap.add_argument("--frame-sizes", default=",".join(map(str, FRAME_SIZES)),
                    help="Qwen2.5-VL: the 4:3 frame's long side")
    ap.add_argument("--proj", default="f16", help="the projector's type: f16 (as published) | f32 | q8_0")
    ap.add_argument("--min-ticks", type=int, default=5, help="ticks a cell measures before its budget can stop it")
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--long", type=int, default=600, help="ticks for the recommended cell (0 = skip)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--decision-tokens", type=int, default=8)
    ap.add_argument("--cell-budget-s", type=float, default=300, help="stop a cell after this long (0 = never)")
    a = ap.parse_args(argv)
    print(f"load before: {os.getloadavg()}  cores: {os.cpu_count()}  threads: {a.threads}  projector: {a.proj}",
          flush=True)
    results: list[tuple[str, int, int, str, dict]] = []
    header = (f"{'model':18} {'size':>11} {'img_tok':>6}  {'frame p50':>7} {'p95':>7} {'text p50':>7} {'p95':>7} "
              f"{'dec p50':>7} {'p95':>7}  {'tick p50':>7} {'p95':>7}  {'ticks':>5}   (ms)")
    print(header, flush=True)
    for name in a.models.split(","):
        for size, side, label in cells(name, a):
            model, mmproj = prepare(name, MODELS[name], size, a.proj)
            r = run_cell(model, mmproj, a.ticks, a.threads, a.decision_tokens, a.cell_budget_s, side, a.min_ticks)
            results.append((name, size, side, label, r))
            print(_row(name, label, r) + (f"  ({r['error']})" if "error" in r else ""), flush=True)
    print(f"load after: {os.getloadavg()}")
    order = list(MODELS)

    def best(limit: float):
        ok = [(n, s, f, lab) for n, s, f, lab, r in results if "error" not in r and _p(r["total"], 95) < limit]
        return max(ok, key=lambda x: (order.index(x[0]), x[1], x[2]), default=None)

    one, two = best(1.0), best(2.0)
    print(f"p95 under 1 s: {' '.join(one[::3]) if one else 'none'}   "
          f"under 2 s: {' '.join(two[::3]) if two else 'none'}")
    if not (one or two) and a.long:
        print(f"no cell keeps p95 under 2 s: no {a.long}-tick run")
    pick = one or two
    if pick and a.long:
        model, mmproj = prepare(pick[0], MODELS[pick[0]], pick[1], a.proj)
        r = run_cell(model, mmproj, a.long, a.threads, a.decision_tokens, frame_side=pick[2])
        first, last = r["total"][:60], r["total"][-60:]
        print(f"{a.long} ticks on {' '.join(pick[::3])}: p50/p95 first 60 = {_p(first, 50) * 1000:.0f}/{_p(first, 95) * 1000:.0f} ms, "
              f"last 60 = {_p(last, 50) * 1000:.0f}/{_p(last, 95) * 1000:.0f} ms, overall p95 "
              f"{_p(r['total'], 95) * 1000:.0f} ms  (load {os.getloadavg()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
