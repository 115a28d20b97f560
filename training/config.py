"""The SFT run's settings, with their defaults and where they come from (docs/training.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.context import HintOptions
from engine.frames import DEFAULT_MAX_PIXELS
from training.weights import WeightConfig


@dataclass
class LoraConfig:
    """LoRA through peft (real checkpoints). rank/alpha as in common Qwen-VL LoRA recipes; targets
    the attention and MLP projections of the language model; ``merge`` writes a merged HF checkpoint
    the torch backend loads unchanged (otherwise only the peft adapter is written)."""

    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                        "gate_proj", "up_proj", "down_proj"])
    merge: bool = True


@dataclass
class TrainConfig:
    """model: the checkpoint to start from (a local HF folder).
    data: dataset folders (per-second annotations + videos). out: run folder.
    steps: optimizer steps (0 = ``epochs`` passes over the episodes). lr: AdamW learning rate with a
    linear warm-up over ``warmup`` steps. seed: data order, episode windows and every RNG.
    lora: None = full fine-tuning (tiny models), else LoRA. dtype: fp32 on CPU, bf16 on CUDA (auto).
    window: answer-centred episode length in ticks (the reference's 20–60).
    """

    model: str = ""
    data: list[str] = field(default_factory=list)
    out: str = "runs/sft"
    steps: int = 0
    epochs: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup: int = 10
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    lora: LoraConfig | None = None
    gradient_checkpointing: bool = False
    train_vision: bool = False  # the vision tower (ViT + merger) stays frozen, as in common VLM SFT recipes
    window: tuple[int, int] = (20, 60)
    weights: WeightConfig = field(default_factory=WeightConfig)
    skip_bad: bool = False
    save_every: int = 50  # steps between resumable checkpoints (Ctrl-C always leaves one)
    mode: str = "prompt"  # the system prompt the episodes carry (the eval runner's default)
    delegation: bool = True
    threads: int = 0  # torch CPU threads (0 = torch's default); 1 is fastest on a shared, busy machine
    shuffle_labels: bool = False  # negative control: permute each clip's decisions across its seconds
    hints: HintOptions = field(default_factory=HintOptions)  # perception hints in the turns (off by default)
    max_pixels: int = DEFAULT_MAX_PIXELS  # the session's frame size ([capture] max_pixels): train as it will run
