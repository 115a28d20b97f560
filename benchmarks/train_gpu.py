"""LoRA SFT at real sizes on a GPU: peak memory and tokens/s (≤ 8 min of device time).

    python benchmarks/train_gpu.py [--shape 3b|7b|tiny] [--steps 20] [--ticks 30]

A Qwen2.5-VL-3B-shaped model (7B-shaped with ``--shape 7b``, 4-bit when bitsandbytes is installed) is
initialised at random in bf16 — its weights do not matter for memory or speed — and trained with LoRA
(training/lora.py) on episodes laid out by the real torch backend (training/episodes.py) from a generated
clip with frames at the app's default size (448×448 pixels at most). Prints peak GPU memory, tokens/s and
whether it fits 16 GB. Without CUDA it says so and exits 0 (``--shape tiny`` runs the same path on CPU).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "3b": dict(hidden=2048, inter=11008, layers=36, heads=16, kv=2, vis_depth=32, vis_hidden=1280, vis_inter=3420),
    "7b": dict(hidden=3584, inter=18944, layers=28, heads=28, kv=4, vis_depth=32, vis_hidden=1280, vis_inter=3420),
    "tiny": dict(hidden=128, inter=512, layers=2, heads=4, kv=2, vis_depth=4, vis_hidden=64, vis_inter=128),
}


def build(out: Path, shape: str, texts: list[str], max_pixels: int) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2VLImageProcessorPil

    from training.tiny import build_tokenizer

    s = SHAPES[shape]
    tok = build_tokenizer(texts)
    conv = tok.convert_tokens_to_ids
    half = s["hidden"] // s["heads"] // 2
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    text = dict(vocab_size=151936, hidden_size=s["hidden"], intermediate_size=s["inter"], num_hidden_layers=s["layers"],
                num_attention_heads=s["heads"], num_key_value_heads=s["kv"], max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section},
                eos_token_id=conv("<|im_end|>"), pad_token_id=conv("<|endoftext|>"))
    depth = s["vis_depth"]
    vision = dict(depth=depth, hidden_size=s["vis_hidden"], intermediate_size=s["vis_inter"], num_heads=16
                  if shape != "tiny" else 2, out_hidden_size=s["hidden"], patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, window_size=112, fullatt_block_indexes=list(range(depth // 4 - 1, depth, depth // 4)))
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=conv("<|image_pad|>"),
                           video_token_id=conv("<|video_pad|>"), vision_start_token_id=conv("<|vision_start|>"),
                           vision_end_token_id=conv("<|vision_end|>"))
    out.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(out)
    tok.save_pretrained(out)
    Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=56 * 56,
                             max_pixels=max_pixels).save_pretrained(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="3b", choices=sorted(SHAPES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--ticks", type=int, default=30, help="episode length in ticks")
    ap.add_argument("--max-pixels", type=int, default=448 * 448)
    a = ap.parse_args()

    import torch

    cuda = torch.cuda.is_available()
    if not cuda and a.shape != "tiny":
        print("no CUDA device: skipped (run with --shape tiny to exercise the same path on CPU)")
        return 0
    from transformers import Qwen2_5_VLForConditionalGeneration

    from engine.backends.torch_loading import load_processor
    from engine.eval.scenarios import ClipSpec, SuiteSpec, make_suite
    from training.config import LoraConfig
    from training.dataset import read_dataset
    from training.episodes import episodes, layout_clip
    from training.lora import wrap_lora
    from training.tiny import dataset_texts
    from training.trainer import forward_loss

    work = Path(tempfile.mkdtemp(prefix="train_gpu-"))
    make_suite(work / "suite", SuiteSpec(seed=5, size=(640, 480), clips=[ClipSpec("lecture", 60, 1)]))
    anns, _ = read_dataset(work / "suite")
    path = build(work / "model", a.shape, dataset_texts(anns), a.max_pixels)
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(path)
    quant = ""
    kw = {}
    if a.shape == "7b" and cuda:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig

            kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
            quant = " (4-bit)"
        except ImportError:
            print("bitsandbytes is not installed: the 7B shape runs in bf16")
    t0 = time.perf_counter()
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(cfg).to(dtype)
    if kw:  # quantize by saving and reloading through transformers' 4-bit loader
        model.save_pretrained(work / "model")
        del model
        torch.cuda.empty_cache()
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(work / "model", device_map={"": 0}, **kw)
    processor = load_processor(str(path), cfg.model_type)  # no video processor (no torchvision)
    print(f"{a.shape}{quant}: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, built in "
          f"{time.perf_counter() - t0:.0f} s")
    chunks = layout_clip(model, processor, anns[0])
    eps = [e for e in episodes(chunks, anns[0], random.Random(0), None, a.ticks, a.ticks)]
    model = wrap_lora(model, LoraConfig())
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    tokens, t0 = 0, None
    for step in range(a.steps):
        if step == 2:  # warm-up steps excluded from the rate
            if cuda:
                torch.cuda.synchronize()
            t0, tokens = time.perf_counter(), 0
        ep = eps[step % len(eps)]
        loss = forward_loss(model, ep, device)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += len(ep.input_ids)
    if cuda:
        torch.cuda.synchronize()
    rate = tokens / (time.perf_counter() - t0) if t0 else 0.0
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(f"episode {len(eps[0].input_ids)} tokens ({a.ticks} ticks, frames ≤ {a.max_pixels} px); "
          f"{rate:.0f} tokens/s; peak GPU memory {peak:.1f} GiB; fits 16 GB: {peak < 16 if cuda else 'n/a'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
