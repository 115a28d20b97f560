"""A real, tiny Instruct/Thinking pair made the way real pairs are made, trainable on 2 CPU cores.

Task: addition of two n-digit numbers, n = 1…``DIGITS`` (default 5), written zero-padded to ``DIGITS``
digits, ``Q:00123+00456\\nA:``; difficulty = n. Answering directly (most significant digit first) needs
every carry below each digit at once, which a tiny model manages for short operands and not for long
ones; a digit-by-digit scratchpad makes every length easy. A shared base (a tiny Qwen3) is trained on
both answer formats for the same prompt, then fine-tuned equally (same steps, rate and data stream) into

* **Instruct**: answers directly, ``000579``;
* **Thinking**: opens ``<think>`` itself and writes the scratchpad first,
  ``<think>3+6+0=09,2+5+0=07,…</think>000579``.

Both are saved as ordinary transformers checkpoints with one shared character tokenizer and the same
chat template: the Thinking model writes ``<think>`` itself (as the original Qwen3 hybrids do), so an
interpolated model decides per question whether to think. ``THINKING_TEMPLATE``, which pre-inserts
``<think>`` (as Qwen3-4B-Thinking-2507's does), serves the mechanics tests' ``random_pair``.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

THINK, END_THINK, EOS, PAD, UNK = "<think>", "</think>", "<|im_end|>", "<pad>", "<unk>"
CHARS = list("0123456789+=,:QA\n")
# Widest operand. Measured (benchmarks/dami.py, fixed-width 4/5/6-digit operands, one run each): direct
# answers were 98.5% / 32% / 0% right, so widths 1–5 span easy to hard
DIGITS = 5


def set_digits(n: int) -> None:
    """Operand width for everything below (the tiny model has 128 positions: at most 7 digits)."""
    global DIGITS
    if not 2 <= n <= 7:
        raise ValueError("digits must be 2..7")
    DIGITS = n
BYTES = [f"<0x{i:02X}>" for i in range(256)]

# The question is the first quoted block of the brain's message (engine.brain.brain_messages), or the
# whole last message when there is none.
_TEMPLATE = (
    "{% set c = messages[-1]['content'] %}"
    "{% if '<untrusted>' in c %}{% set c = c.split('<untrusted>\\n')[1].split('\\n</untrusted>')[0] %}{% endif %}"
    "Q:{{ c }}\n{% if add_generation_prompt %}A:{{ PREFILL }}{% endif %}"
)
INSTRUCT_TEMPLATE = _TEMPLATE.replace("{{ PREFILL }}", "")
THINKING_TEMPLATE = _TEMPLATE.replace("{{ PREFILL }}", THINK)


def make_tokenizer(template: str = INSTRUCT_TEMPLATE):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # byte tokens are never produced here; they give llama.cpp's SPM vocabulary its byte fallback
    vocab = {t: i for i, t in enumerate([PAD, EOS, UNK, THINK, END_THINK, *CHARS, *BYTES])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, unk_token=UNK,
                                   chat_template=template)
    fast.add_tokens([THINK, END_THINK])  # already in the vocabulary: this only keeps them whole
    return fast


# --- the task ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def question(self) -> str:
        return f"{self.a:0{DIGITS}d}+{self.b:0{DIGITS}d}"

    @property
    def prompt(self) -> str:
        return f"Q:{self.question}\nA:"

    @property
    def answer(self) -> str:
        return f"{self.a + self.b:0{DIGITS + 1}d}"

    @property
    def difficulty(self) -> int:
        """How many digits the longer operand has (1…DIGITS)."""
        return len(str(max(self.a, self.b)))

    def scratchpad(self) -> str:
        steps, c = [], 0
        for i in range(DIGITS):
            x, y = self.a // 10**i % 10, self.b // 10**i % 10
            s = x + y + c
            steps.append(f"{x}+{y}+{c}={s:02d},")
            c = s // 10
        return THINK + "".join(steps) + END_THINK

    def target(self, thinking: bool) -> str:
        return (self.scratchpad() if thinking else "") + self.answer


def parse_answer(text: str) -> str:
    """The final answer: what follows the last </think>, digits only."""
    tail = text.rsplit(END_THINK, 1)[-1]
    return "".join(ch for ch in tail if ch.isdigit())


def sample(rng: random.Random, difficulty: int | None = None) -> Problem:
    """Two random n-digit operands; n = ``difficulty``, or uniform over 1…DIGITS."""
    n = difficulty or rng.randint(1, DIGITS)
    lo = 10 ** (n - 1) if n > 1 else 0
    return Problem(rng.randrange(lo, 10**n), rng.randrange(lo, 10**n))


def graded_set(n_per_level: int, seed: int) -> list[Problem]:
    rng = random.Random(seed)
    return [sample(rng, n) for n in range(1, DIGITS + 1) for _ in range(n_per_level)]


# --- the model and its trainer ------------------------------------------------------------------------
def make_model(vocab_size: int, seed: int = 0):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=vocab_size, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=128,
                      rope_theta=10000.0, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
                      bos_token_id=1)
    return Qwen3ForCausalLM(cfg)


def _batch(tok, problems: list[Problem], thinking: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and labels (loss on the answer only), right-padded."""
    rows, labels = [], []
    for p, t in zip(problems, thinking, strict=True):
        pid = tok(p.prompt, add_special_tokens=False)["input_ids"]
        aid = tok(p.target(t), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append(pid + aid)
        labels.append([-100] * len(pid) + aid)
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    lab = torch.full((len(rows), width), -100)
    for i, (r, la) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        lab[i, : len(la)] = torch.tensor(la)
    return ids, lab


def train(model, tok, steps: int, mode: str, seed: int, lr: float = 3e-3, batch: int = 64,
          log_every: int = 0) -> float:
    """AdamW with linear warm-up and cosine decay. ``mode``: "both" (base), "direct" or "think"."""
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + torch.cos(torch.tensor(s / steps * 3.14159)).item()))
    model.train()
    loss = torch.tensor(0.0)
    for step in range(steps):
        probs = [sample(rng) for _ in range(batch)]
        think = [rng.random() < 0.5 if mode == "both" else mode == "think" for _ in probs]
        ids, lab = _batch(tok, probs, think)
        loss = model(input_ids=ids, attention_mask=(ids != tok.pad_token_id).long(), labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if log_every and step % log_every == 0:
            print(f"  {mode} step {step} loss {loss.item():.3f}", flush=True)
    model.eval()
    return float(loss.detach())


def pair_stamp(base_steps: int, ft_steps: int, ft_lr: float, seed: int) -> str:
    """The file that marks a finished pair of this recipe (the task's width is part of it)."""
    return f"done-1to{DIGITS}d-{base_steps}-{ft_steps}-{ft_lr:g}-{seed}"


@dataclass
class PairPaths:
    instruct: Path
    thinking: Path
    seconds: float = 0.0


def build_pair(out: str | Path, base_steps: int = 800, ft_steps: int = 150, seed: int = 0,
               log_every: int = 0, ft_lr: float = 5e-4) -> PairPaths:
    """Train base → Instruct and → Thinking; save both under ``out``. Reuses a finished pair.

    The fine-tunes are short and gentle (150 steps at 5e-4 by default) so both stay in the base's basin,
    where their interpolation is still a working model (two far-apart fine-tunes need not be)."""
    import copy

    out = Path(out)
    paths = PairPaths(out / "instruct", out / "thinking")
    stamp = out / pair_stamp(base_steps, ft_steps, ft_lr, seed)
    if stamp.exists():
        return paths
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # on 2 shared cores two threads ran 10x slower than one
    tok = make_tokenizer()
    base = make_model(len(tok), seed)
    train(base, tok, base_steps, "both", seed, log_every=log_every)
    for mode, path in (("direct", paths.instruct), ("think", paths.thinking)):
        m = copy.deepcopy(base)
        # the same data stream and rate for both ("fine-tuned equally")
        train(m, tok, ft_steps, mode, seed + 1, lr=ft_lr, log_every=log_every)
        m.save_pretrained(path)
        tok.save_pretrained(path)  # one template: the Thinking model opens <think> itself
    paths.seconds = time.perf_counter() - t0
    stamp.write_text(f"{paths.seconds:.1f}\n")
    return paths


def random_pair(out: str | Path, seed: int = 0, spread: float = 0.05) -> PairPaths:
    """An untrained pair for mechanics tests: one random base, two independent perturbations of it
    (a stand-in for two fine-tunes; the pair check and exactness do not care what the weights learned)."""
    out = Path(out)
    paths = PairPaths(out / "instruct", out / "thinking")
    tok = make_tokenizer()
    base = make_model(len(tok), seed)
    g = torch.Generator().manual_seed(seed + 1)
    for path, template in ((paths.instruct, INSTRUCT_TEMPLATE), (paths.thinking, THINKING_TEMPLATE)):
        m = make_model(len(tok), seed)
        with torch.no_grad():
            for p, q in zip(m.parameters(), base.parameters(), strict=True):
                p.copy_(q + spread * torch.randn(q.shape, generator=g))
        m.save_pretrained(path)
        make_tokenizer(template).save_pretrained(path)
    return paths
