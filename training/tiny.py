"""A tiny Qwen2.5-VL-shaped interaction model, built from config, small enough to train on 2 CPU cores.

The tokenizer is a byte-level BPE trained on the protocol's own text (system prompts, markers, time
markers) and the dataset's questions and replies, so a decision is a few tokens. Frames are shown at
most ``image_side``² pixels (default 56×56: at most 4 image tokens, what 2 CPU cores can train on). Weights are random until ``presence train sft`` trains them.
"""

from __future__ import annotations

from pathlib import Path

from engine.context import QUERY_HEADER
from engine.prompts import NATIVE_NO_DELEGATION, NATIVE_WITH_DELEGATION, PROMPT_MODE, UNTRUSTED_NOTE

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}"
    "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}{% elif part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _corpus(texts: list[str]) -> list[str]:
    base = [PROMPT_MODE, NATIVE_WITH_DELEGATION, NATIVE_NO_DELEGATION, UNTRUSTED_NOTE, QUERY_HEADER,
            "</silence> </response> </delegation>"]
    base += [f"<{t}.0 seconds>" for t in range(0, 400, 7)]
    return base * 4 + list(texts) * 2


def build_tokenizer(texts: list[str], vocab_size: int = 1024):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # Qwen2's split rule, then bytes: llama.cpp tokenizes a converted model with the same rule
    # (training/gguf.py), so both backends see the same tokens.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHAT_TEMPLATE)


def build_tiny_model(out: str | Path, texts: list[str], hidden: int = 128, layers: int = 4,
                     vocab_size: int = 1024, seed: int = 0, image_side: int = 56) -> Path:
    """Write a random tiny Qwen2.5-VL checkpoint (weights, tokenizer, processor) to ``out``."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    tok = build_tokenizer(texts, vocab_size)
    conv = tok.convert_tokens_to_ids
    half = hidden // 4 // 2  # rotary pairs per head (4 heads): M-RoPE splits them over (t, h, w)
    section = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    text = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                bos_token_id=conv("<|endoftext|>"), eos_token_id=conv("<|im_end|>"), pad_token_id=conv("<|endoftext|>"),
                rope_parameters={"rope_type": "default", "rope_theta": 1e4, "mrope_section": section})
    # depth 4: llama.cpp maps the merger MLP (mlp.0, mlp.2) through block indexes, so depth must exceed 2
    vision = dict(depth=4, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=hidden, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1, 3])
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True,
                           image_token_id=conv("<|image_pad|>"), video_token_id=conv("<|video_pad|>"),
                           vision_start_token_id=conv("<|vision_start|>"), vision_end_token_id=conv("<|vision_end|>"))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    ip = Qwen2VLImageProcessorPil(patch_size=14, merge_size=2, temporal_patch_size=2, min_pixels=28 * 28,
                                  max_pixels=image_side * image_side)
    ip.save_pretrained(out)
    return out


def dataset_texts(anns) -> list[str]:
    """Every question and reply of a dataset (the tokenizer's training text)."""
    return [x.content for a in anns for x in (*a.questions, *a.responses)]
