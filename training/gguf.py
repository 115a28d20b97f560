"""A trained checkpoint → GGUF + mmproj for ``--backend llamacpp``, with llama.cpp's own converter.

The converter (``convert_hf_to_gguf.py``, its ``conversion`` package and ``gguf-py``) ships only in llama-cpp-python's source
distribution; ``make gguf-converter`` keeps it in ``$VENV/share/llama-convert`` (or point
``PRESENCE_LLAMA_CONVERTER`` at a folder holding it). It runs in a subprocess. One patch: llama.cpp
names a BPE pre-tokenizer by hashing how it splits a test text, and a tokenizer trained here (the
tiny model's) has no registered hash; it uses Qwen2's split rule (training/tiny.py), so an unknown
hash is read as ``qwen2``. Known tokenizers are named by llama.cpp exactly as without the patch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_BOOT = """
import sys, importlib.util
sys.argv = sys.argv[1:]
import conversion.base as base
orig = base.TextModel.get_vocab_base_pre
def pre(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        return "qwen2"
base.TextModel.get_vocab_base_pre = pre
spec = importlib.util.spec_from_file_location("convert_hf_to_gguf", sys.argv[0])
mod = importlib.util.module_from_spec(spec)
sys.modules["convert_hf_to_gguf"] = mod
spec.loader.exec_module(mod)
mod.main()
"""


class GGUFError(RuntimeError):
    """Conversion cannot run or failed: one readable line."""


def converter_dir() -> Path | None:
    env = os.environ.get("PRESENCE_LLAMA_CONVERTER")
    for d in ([Path(env)] if env else []) + [Path(sys.prefix) / "share" / "llama-convert"]:
        if all((d / n).exists() for n in ("convert_hf_to_gguf.py", "conversion", "gguf-py")):
            return d
    return None


def _run(conv: Path, args: list[str]) -> None:
    path = os.pathsep.join([str(conv), str(conv / "gguf-py"), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run([sys.executable, "-c", _BOOT, str(conv / "convert_hf_to_gguf.py"), *args],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [x for x in (proc.stderr or proc.stdout).strip().splitlines() if x.strip()]
        raise GGUFError(f"convert_hf_to_gguf failed: {lines[-1] if lines else proc.returncode}")


def convert(model_dir: str | Path, out_dir: str | Path, outtype: str = "f32") -> tuple[Path, Path]:
    """Write ``<name>-<outtype>.gguf`` and ``<name>-mmproj-<outtype>.gguf`` into ``out_dir``."""
    conv = converter_dir()
    if conv is None:
        raise GGUFError("the GGUF converter is not installed: run `make gguf-converter` "
                        "(or set PRESENCE_LLAMA_CONVERTER)")
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise GGUFError(f"{model_dir}: not a Hugging Face checkpoint (no config.json)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = model_dir.name if model_dir.name != "model" else model_dir.parent.name
    model = out / f"{name}-{outtype}.gguf"
    mmproj = out / f"{name}-mmproj-{outtype}.gguf"
    _run(conv, [str(model_dir), "--outfile", str(model), "--outtype", outtype])
    _run(conv, [str(model_dir), "--outfile", str(mmproj), "--outtype", outtype, "--mmproj"])
    return model, mmproj
