"""The GRPO / NPO / RLSD settings, each with its default and where the default comes from.

"ours" marks a choice the sources leave open (docs/training.md lists them).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RewardWeights:
    """The episode reward r = sw_f1·SW-F1 + earliness·PAUC − duplicate·(replies after the first in a
    window) − false_alarm·(false alarms per minute of silence) − format·(share of malformed decisions)
    + delegation·(share of items answered and delegated iff tagged). SW-F1's own weights (TP 2, FN 2,
    FP 0.2) are engine.eval.metrics'. The guard weights are ours, chosen so that always replying and
    guessing score below silence (tests/training/rl/test_reward.py)."""

    sw_f1: float = 1.0
    earliness: float = 0.5
    duplicate: float = 0.5  # per extra reply inside an answer window (MMDuet2: the guard is load-bearing)
    false_alarm: float = 0.02  # per false alarm per minute of silence (60/min costs 1.2)
    format: float = 1.0
    delegation: float = 0.5


@dataclass
class RolloutConfig:
    """group: G rollouts per window (reference 8; the issue allows 4–16). temperature 1.0 and no
    truncation (RLSD's script: temperature 1.0, top-p 1.0), so the loss scores exactly the sampled
    distribution; with top_k / top_p on, the loss applies the same truncation. max_tokens: the most
    tokens one decision may take (ours: a decision is one short line)."""

    group: int = 8
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_tokens: int = 24

    def __post_init__(self) -> None:
        if not 4 <= self.group <= 16:
            raise ValueError(f"group must be 4–16 rollouts per window, got {self.group}")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0 (the loss scores a sampled distribution)")


@dataclass
class GRPOConfig:
    """The clipped surrogate of TRL's loss_type="dapo": ε 0.2 / 0.28 (DAPO clip-higher), token mean over
    decision tokens, β = 0 (no KL; TRL's default, RLSD's config), advantages (r − mean)/(std + 1e-4)
    per group (TRL). updates: optimizer steps per rollout batch (1: the ratio is exactly 1)."""

    clip_low: float = 0.2
    clip_high: float = 0.28
    kl_coef: float = 0.0
    scale_by_std: bool = True  # False = Dr.GRPO (mean-centred only)
    adv_eps: float = 1e-4
    updates: int = 1


@dataclass
class RLSDConfig:
    """RLSD (iie-ycx/RLSD, rlsd_config.yaml and rlsd_train.sh): ε_w 0.2, λ 0.5 decaying linearly to 0
    over 60 steps, frozen teacher refreshed from the policy every 20 steps."""

    enabled: bool = False
    eps_w: float = 0.2
    lam: float = 0.5
    decay_steps: int = 60
    refresh_every: int = 20
    hint_marker: str = "Reference answers:"  # ours: the teacher's hint header (the leakage probe looks for it)


@dataclass
class NPOConfig:
    """NPO: gate τ = 0.6 on the group success rate (the paper); one guide per group replacing an
    incorrect rollout (ours: the notes say "the n-th slot"); guide tries per window (ours)."""

    enabled: bool = False
    gate: float = 0.6
    scout_steps: int = 30  # ours: the scout run's length (the paper's Δ is 20–70 steps)
    scout_save_every: int = 10  # ours
    guide_tries: int = 4  # ours: samples from the guide until one verifies correct


@dataclass
class AutoNPOConfig:
    """AutoNPO trigger (thresholds ours; the paper's are not public): the reward EMA (β 0.9) rose over the
    last W steps by at most ε_r × its whole rise since the last intervention, the entropy EMA fell ≥ 5 %
    over W, and at least ``min_gap`` steps passed since the last intervention. Δ candidates: for each of
    ``deltas``, the newest snapshot (one every ``snapshot_every`` steps) at least that far back; V̂ floor c;
    Q̂ from ``q_tries`` samples per window (all ours)."""

    enabled: bool = False
    ema: float = 0.9
    window: int = 20
    slope_ratio: float = 0.1
    entropy_drop: float = 0.05
    min_gap: int = 40
    snapshot_every: int = 10
    deltas: tuple[int, ...] = (10, 20, 30)
    v_floor: float = 0.05
    q_tries: int = 2


@dataclass
class RLConfig:
    """A GRPO run. init: the SFT checkpoint (a Hugging Face folder). data: dataset folders (or
    "symbolstream"). lr: AdamW (ours: 1e-5 for real models; the tiny ones use more). window: ticks per
    answer-centred episode (reference 20–60)."""

    init: str = ""
    data: list[str] = field(default_factory=list)
    out: str = "runs/grpo"
    steps: int = 100
    windows_per_step: int = 1
    lr: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    window: tuple[int, int] = (20, 60)
    mode: str = "prompt"
    save_every: int = 10
    eval_windows: int = 0  # held-out windows scored at the end (0 = all)
    threads: int = 0
    shuffle_rewards: bool = False  # negative control: rewards permuted inside each group batch
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    reward: RewardWeights = field(default_factory=RewardWeights)
    rlsd: RLSDConfig = field(default_factory=RLSDConfig)
    npo: NPOConfig = field(default_factory=NPOConfig)
    autonpo: AutoNPOConfig = field(default_factory=AutoNPOConfig)
