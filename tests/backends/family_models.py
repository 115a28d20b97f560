"""Tiny random checkpoints of the non-ChatML model families, built from transformers config classes.

Each builder writes a complete local checkpoint (weights, config, a locally trained byte-level BPE with the
family's special tokens, image-processor config, the family's real chat template) with ``save_pretrained``,
so the torch backend and llama.cpp's HF→GGUF converter read it exactly as they read a real model:

    build_tiny_smolvlm2(dirpath)   Idefics3ForConditionalGeneration (SmolVLM2's architecture, Llama text)
    build_tiny_gemma3(dirpath)     Gemma3ForConditionalGeneration (SigLIP tower, pooled projector)
    build_tiny_llava(dirpath)      LlavaForConditionalGeneration (CLIP tower, llama text; LLaVA-1.5 layout)

and, for the GGUF tests, tests.tiny_models' Qwen2.5-VL and Qwen3-VL one block deeper where llama.cpp needs it
(build_tiny_qwen25vl_for_gguf, build_tiny_qwen3vl_for_gguf), so the ChatML families convert in the test too.

Weights are random: the outputs are noise, the shapes, positions, image tokens and processors are real.
``text`` / ``vision`` override the tiny shapes (benchmarks/cpu_vlm.py builds the published ones with them).
"""

from __future__ import annotations

from pathlib import Path

from tests.backends import family_templates as templates
from tests.tiny_models import _CORPUS, build_tiny_qwen3vl, build_tiny_qwen25vl

TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=4096)


def _bpe(specials: list[str], template: str, bos: str, eos: str, pad: str, unk: str | None = None, **named):
    """A ~400-token byte-level BPE trained on a few sentences, ``specials`` first (ids 0..N-1)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # "\n\n" as one token, as in the real vocabularies: llama.cpp's SmolVLM slicing looks it up by its text
    tok.train_from_iterator(_CORPUS * 4 + ["System: User: Assistant: ASSISTANT: USER: model user\n\n"] * 8,
                            trainer=trainer)
    kw = dict(named, **({"unk_token": unk} if unk else {}))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad,
                                   chat_template=template, **kw)


def _save(dirpath, model, processor) -> Path:
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    processor.save_pretrained(d)
    processor.tokenizer.save_pretrained(d)  # tokenizer_config.json carries the chat template for the converter
    return d


def _random(model_cls, cfg, seed: int, dtype):
    """``model_cls(cfg)`` with random weights, made directly in ``dtype`` (a 4B model in fp32 would not fit)."""
    import torch

    torch.manual_seed(seed)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype or torch.float32)
    try:
        return model_cls(cfg).eval()
    finally:
        torch.set_default_dtype(old)


def build_tiny_smolvlm2(dirpath, seed: int = 0, text: dict | None = None, vision: dict | None = None,
                        scale_factor: int = 2, image_seq_len: int = 4, longest_edge: int = 64, dtype=None) -> Path:
    import torch  # noqa: F401 - transformers' model classes need it loaded
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                "<global-img>", *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7))]
    tok = _bpe(specials, templates.SMOLVLM2, "<|im_start|>", "<end_of_utterance>", "<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": specials[3:]})
    ids = tok.convert_tokens_to_ids
    # SmolVLM2's published config names its text model VLlama3ForCausalLM (llama.cpp's converter reads that)
    text = {**TEXT, **dict(model_type="llama", architectures=["VLlama3ForCausalLM"], vocab_size=len(tok),
                           rope_theta=1e4, bos_token_id=ids("<|im_start|>"), eos_token_id=ids("<end_of_utterance>"),
                           pad_token_id=ids("<|endoftext|>")), **(text or {})}
    vision = vision or dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=64, patch_size=16)
    cfg = Idefics3Config(text_config=text, vision_config=vision, scale_factor=scale_factor,
                         image_token_id=ids("<image>"), tie_word_embeddings=bool(text.get("tie_word_embeddings")))
    model = _random(Idefics3ForConditionalGeneration, cfg, seed, dtype)
    # tiny: longest_edge = the encoder's side, so a frame is one tile (+ llama.cpp's overview), 4 tokens each
    ip = Idefics3ImageProcessor(do_image_splitting=longest_edge > vision["image_size"],
                                size={"longest_edge": longest_edge},
                                max_image_size={"longest_edge": vision["image_size"]})
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=image_seq_len,
                             chat_template=templates.SMOLVLM2)
    return _save(dirpath, model, proc)


def build_tiny_gemma3(dirpath, seed: int = 0, text: dict | None = None, vision: dict | None = None,
                      mm_tokens: int = 4, dtype=None) -> Path:
    import torch
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
    )

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
                "<end_of_image>", "<image_soft_token>"]
    tok = _bpe(specials, templates.GEMMA3, "<bos>", "<eos>", "<pad>", "<unk>", boi_token="<start_of_image>",
               eoi_token="<end_of_image>", image_token="<image_soft_token>")
    tok.add_special_tokens({"additional_special_tokens": specials[4:]})
    tok.add_bos_token = True
    ids = tok.convert_tokens_to_ids
    text = {**TEXT, **dict(vocab_size=len(tok), sliding_window=64, query_pre_attn_scalar=16, bos_token_id=ids("<bos>"),
                           eos_token_id=ids("<end_of_turn>"), pad_token_id=ids("<pad>")), **(text or {})}
    vision = vision or dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=32, patch_size=8)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=mm_tokens,
                       image_token_index=ids("<image_soft_token>"), boi_token_index=ids("<start_of_image>"),
                       eoi_token_index=ids("<end_of_image>"))
    model = _random(Gemma3ForConditionalGeneration, cfg, seed, dtype)
    with torch.no_grad():  # initialised to zeros, which would make every frame look the same
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.2)
    side = vision["image_size"]
    ip = Gemma3ImageProcessor(size={"height": side, "width": side})
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, image_seq_length=mm_tokens,
                           chat_template=templates.GEMMA3)
    d = _save(dirpath, model, proc)
    del model  # the renaming reads every tensor back: at Gemma-3-4B's shapes two copies would not fit in RAM
    return _published_vision_names(d)


def _published_vision_names(d: Path) -> Path:
    """transformers 5.24 saves the SigLIP tower as ``vision_tower.*``; google/gemma-3-*-it (and so llama.cpp's
    converter) name it ``vision_tower.vision_model.*``, which transformers reads back to the same modules. Only
    the file's JSON header is rewritten (tensor offsets count from the data section, which is copied as is), so a
    Gemma-3-4B-sized file is renamed without holding its tensors in memory."""
    import json
    import shutil

    def published(key: str) -> str:
        if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
            return key.replace("vision_tower.", "vision_tower.vision_model.", 1)
        return key

    f, tmp = d / "model.safetensors", d / "model.safetensors.tmp"
    with open(f, "rb") as src, open(tmp, "wb") as dst:
        header = json.loads(src.read(int.from_bytes(src.read(8), "little")))
        blob = json.dumps({published(k): v for k, v in header.items()}, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % 8)  # the format pads its header with spaces to keep the data 8-byte aligned
        dst.write(len(blob).to_bytes(8, "little") + blob)
        shutil.copyfileobj(src, dst, 1 << 24)
    tmp.replace(f)
    return d


def build_tiny_llava(dirpath, seed: int = 0) -> Path:
    import torch
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    specials = ["<unk>", "<s>", "</s>", "<image>", "<pad>"]
    tok = _bpe(specials, templates.LLAVA15, "<s>", "</s>", "<pad>", "<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    ids = tok.convert_tokens_to_ids
    text = dict(TEXT, model_type="llama", vocab_size=len(tok), rope_theta=1e4, bos_token_id=ids("<s>"),
                eos_token_id=ids("</s>"), pad_token_id=ids("<pad>"))
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=8, projection_dim=32)
    cfg = LlavaConfig(text_config=text, vision_config=vision, image_token_index=ids("<image>"),
                      vision_feature_layer=-2, vision_feature_select_strategy="default")
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          chat_template=templates.LLAVA15, num_additional_image_tokens=1)
    return _save(dirpath, model, proc)


def _reshaped(d: Path, model_cls, seed: int, text: dict, vision: dict, dtype) -> Path:
    """The checkpoint in ``d`` (tokenizer, processor, template kept) with the ``text`` / ``vision`` config
    overrides, its weights rebuilt at the new shapes."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(d, local_files_only=True).to_dict()
    cfg["text_config"].update(text)
    cfg["vision_config"].update(vision)
    if "num_hidden_layers" in text:  # one entry per layer: rebuilt from the new count
        cfg["text_config"].pop("layer_types", None)
    _random(model_cls, model_cls.config_class.from_dict(cfg), seed, dtype).save_pretrained(d)
    return d


def build_tiny_qwen25vl_for_gguf(dirpath, seed: int = 0, text: dict | None = None, vision: dict | None = None,
                                 dtype=None) -> Path:
    """tests.tiny_models' Qwen2.5-VL with a 3-block vision tower. llama.cpp's converter names tensors per block
    index up to the tower's depth, and the merger's last layer is ``visual.merger.mlp.2``: with 2 blocks it has
    no name to map to ("Can not map tensor 'visual.merger.mlp.2.bias'"). Blocks 0-1 windowed, 2 full attention."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    vision = {"depth": 3, "fullatt_block_indexes": [2], **(vision or {})}
    return _reshaped(build_tiny_qwen25vl(dirpath, seed=seed), Qwen2_5_VLForConditionalGeneration, seed,
                     text or {}, vision, dtype)


def build_tiny_qwen3vl_for_gguf(dirpath, seed: int = 0) -> Path:
    """tests.tiny_models' Qwen3-VL reshaped like the shared test assets' pair: 4 text layers (llama.cpp's
    qwen3vl graph aborts on the first decode, ``GGML_ASSERT(ggml_can_repeat(b, a))``, when the deepstack
    layers are as many as the text layers) and head size 64, a multiple of the quantized KV block, so the
    q8_0 / q4_0 KV paths run on it as they do on the shared pair."""
    from transformers import Qwen3VLForConditionalGeneration

    text = {"num_hidden_layers": 4, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 64,
            "rope_parameters": {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [12, 10, 10],
                                "mrope_interleaved": True}}
    return _reshaped(build_tiny_qwen3vl(dirpath, seed=seed), Qwen3VLForConditionalGeneration, seed,
                     text, {"out_hidden_size": 128}, None)


BUILDERS = {"smolvlm2": build_tiny_smolvlm2, "gemma3": build_tiny_gemma3, "llava": build_tiny_llava,
            "qwen2.5-vl": build_tiny_qwen25vl_for_gguf, "qwen3-vl": build_tiny_qwen3vl_for_gguf}


def checkpoint(name: str, base: Path) -> Path:
    """The tiny ``name`` checkpoint under ``base`` (one pytest session's temp root), built once per session."""
    d = Path(base) / "families" / name
    if not (d / "model.safetensors").is_file():
        BUILDERS[name](d)
    return d


# training.gguf's converter boot (its pre-tokenizer patch included), run over several conversions in ONE
# subprocess: importing torch and the converter dominates a tiny model's conversion on 2 busy cores.
_BATCH = """
import json
results = []
for args in json.loads(sys.argv[1]):
    sys.argv = [sys.argv[0], *args]
    try:
        mod.main()
        results.append("")
    except BaseException as exc:  # one failed conversion (an unsupported projector) must not stop the rest
        results.append(f"{type(exc).__name__}: {exc}")
print("RESULTS " + json.dumps(results))
"""


def convert_all(jobs: list[list[str]]) -> list[str]:
    """Run llama.cpp's converter on each argument list; one error line per job ("" = converted)."""
    import json
    import os
    import subprocess
    import sys

    from training.gguf import _BOOT, converter_dir

    conv = converter_dir()
    boot = _BOOT.replace("mod.main()", "") + _BATCH
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(conv), str(conv / "gguf-py")]))
    proc = subprocess.run([sys.executable, "-c", boot, str(conv / "convert_hf_to_gguf.py"), json.dumps(jobs)],
                          env=env, capture_output=True, text=True)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULTS ")]
    if not line:
        raise RuntimeError(f"the converter did not run: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return json.loads(line[-1][len("RESULTS "):])


def gguf_pairs(names: list[str], base: Path) -> dict[str, tuple[Path, Path | None, str]]:
    """Each family converted by llama.cpp's own converter, once per session: name → (model, mmproj or None,
    why there is no mmproj)."""
    out = {}
    jobs, want = [], []
    for name in names:
        d = Path(base) / "families-gguf" / name
        model, mmproj = d / f"{name}-f32.gguf", d / f"{name}-mmproj-f32.gguf"
        out[name] = (model, mmproj)
        if not model.is_file():
            src = checkpoint(name, base)
            d.mkdir(parents=True, exist_ok=True)
            jobs += [[str(src), "--outfile", str(model), "--outtype", "f32"],
                     [str(src), "--outfile", str(mmproj), "--outtype", "f32", "--mmproj"]]
            want += [(name, "model"), (name, "mmproj")]
    for (name, kind), err in zip(want, convert_all(jobs) if jobs else [], strict=True):
        if err and kind == "model":
            raise RuntimeError(f"{name}: {err}")
        if err:
            (Path(base) / "families-gguf" / name / "no-mmproj.txt").write_text(err)
    result = {}
    for name, (model, mmproj) in out.items():
        why = Path(base) / "families-gguf" / name / "no-mmproj.txt"
        result[name] = (model, mmproj if mmproj.is_file() else None, why.read_text() if why.is_file() else "")
    return result
