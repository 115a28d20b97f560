"""Loading a transformers VLM for the torch backend: device, dtype, 4/8-bit weights, processor.

The processor needs care: in transformers 5.24 every Qwen-VL processor insists on a video processor,
which needs torchvision, which must never be installed (its PyPI build breaks CPU torch). So when
``AutoProcessor`` fails we build the same processor class without a video processor (deps_probe §1);
images work, video input does not (the app never sends video to the model, only frames).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.backends.base import ModelLoadError

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16"}


@dataclass
class Loaded:
    model: object
    processor: object
    tokenizer: object
    device: str
    dtype: str


def pick_device(requested: str) -> str:
    """``auto`` → CUDA, then Apple MPS, then CPU; an explicit choice is checked, not trusted."""
    import torch

    req = (requested or "auto").lower()
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if req.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{requested}' asked for, but this torch build has no CUDA device")
    if req == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("device 'mps' asked for, but Apple MPS is not available here")
    return req


def pick_dtype(requested: str, device: str) -> str:
    """``auto`` → bf16 on CUDA, fp16 on MPS (bf16 support there is partial), fp32 on CPU."""
    req = (requested or "auto").lower()
    if req == "auto":
        return "bfloat16" if device.startswith("cuda") else "float16" if device == "mps" else "float32"
    if req not in _DTYPES:
        raise ModelLoadError(f"unknown dtype '{requested}' (auto | float32 | bfloat16 | float16)")
    return _DTYPES[req]


def quantization_config(kind: str, device: str, dtype: str):
    """bitsandbytes NF4 / int8 weights; CUDA only, with a clear line elsewhere."""
    kind = (kind or "none").lower()
    if kind in ("none", ""):
        return None
    if kind not in ("4bit", "8bit"):
        raise ModelLoadError(f"unknown quantization '{kind}' (none | 4bit | 8bit)")
    if not device.startswith("cuda"):
        raise ModelLoadError(
            f"{kind} weights need a CUDA GPU (bitsandbytes); this device is {device} — use quantization=none"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"{kind} weights need bitsandbytes: pip install bitsandbytes") from None
    import torch
    from transformers import BitsAndBytesConfig

    if kind == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=getattr(torch, dtype), bnb_4bit_use_double_quant=True)


def resolve_model(model: str) -> str:
    """A local directory as is; a hub id only from the local cache (``presence models pull`` puts it there)."""
    if not model:
        raise ModelLoadError("no model given: pass --model DIR (a transformers VLM directory)")
    p = Path(os.path.expanduser(model))
    if p.exists():
        if not (p / "config.json").is_file():
            raise ModelLoadError(f"{model}: not a transformers model directory (no config.json)")
        return str(p)
    if model.count("/") == 1 and not model.startswith(("/", ".")):
        return model  # a hub id: from_pretrained(local_files_only=True) reads the local cache
    raise ModelLoadError(f"model '{model}' not found")


def _no_video_processor(path: str, model_type: str):
    """The model's processor class rebuilt without a video processor (needs no torchvision)."""
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    names = {"qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor", "qwen2_vl": "Qwen2VLProcessor",
             "qwen3_vl_moe": "Qwen3VLProcessor"}
    base = getattr(transformers, names.get(model_type, ""), None)
    if base is None:
        raise ModelLoadError(f"no processor for model type '{model_type}' without torchvision")

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kw):
        base.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kw)

    # ProcessorMixin reads its sub-processors from the __init__ signature: no video_processor there.
    cls = type(f"NoVideo{base.__name__}", (base,), {"__init__": __init__})
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ip = AutoImageProcessor.from_pretrained(path, local_files_only=True)
    return cls(image_processor=ip, tokenizer=tok, chat_template=getattr(tok, "chat_template", None))


def load_processor(path: str, model_type: str):
    from transformers import AutoProcessor

    try:
        proc = AutoProcessor.from_pretrained(path, local_files_only=True)
        if getattr(proc, "image_processor", None) is not None:
            return proc
    except (ImportError, AttributeError, ValueError, TypeError, OSError, KeyError):
        pass  # usually: the video processor wants torchvision
    try:
        return _no_video_processor(path, model_type)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one readable line
        raise ModelLoadError(f"cannot build a processor for {path}: {exc}") from None


def load_model(model: str, device: str = "auto", dtype: str = "auto", quantization: str = "none") -> Loaded:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    path = resolve_model(model)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    qcfg = quantization_config(quantization, dev, dt)
    try:
        cfg = AutoConfig.from_pretrained(path, local_files_only=True)
        kw = dict(local_files_only=True, dtype=getattr(torch, dt))
        if qcfg is not None:
            kw.update(quantization_config=qcfg, device_map={"": 0})
        m = AutoModelForImageTextToText.from_pretrained(path, **kw)
    except ModelLoadError:
        raise
    except OSError as exc:
        hint = " (run `presence models pull` first)" if not Path(path).exists() else ""
        raise ModelLoadError(f"cannot load model '{model}'{hint}: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"cannot load model '{model}': {str(exc).splitlines()[0]}") from None
    if qcfg is None:
        m = m.to(dev)
    m.eval()
    proc = load_processor(path, cfg.model_type)
    return Loaded(m, proc, proc.tokenizer, dev, dt)
