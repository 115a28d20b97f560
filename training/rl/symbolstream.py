"""SymbolStream: a synthetic per-tick environment and a tiny text model, the CPU proxy for the decision.

Each tick shows one symbol: noise from {·, a, b, c}, or a target. The query at tick 0 says which:

    watch   "Tell me when X appears."        reply ``</response> X`` within 2 ticks of X's onset
    hard    "H means hard: hand it over."    delegate ``</response> hard </delegation> H`` within 2 ticks

The other task's symbol may appear as a distractor (silence is right there). Windows are laid out with
the torch backend's own ``CHATML`` layout (system, query header, time markers) on a text-only Qwen2
built from config, so rollouts and scoring run through exactly the code the VLM episodes use. The
environment is a pure function of its seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch

from engine.backends.gguf_layout import CHATML
from engine.context import QUERY_HEADER, time_marker
from engine.eval.scenarios import Expected
from engine.protocol import DELEGATION, RESPONSE, SILENCE
from training.rl.rollout import Obs, Roller, Window

SYSTEM = "Watch the symbols. Answer when asked, else stay silent."
NOISE = ["·", "a", "b", "c"]
TASKS = {  # name: (query, symbol, reply, delegate)
    "watch": ("Tell me when X appears.", "X", f"{RESPONSE} X", False),
    "hard": ("H means hard: hand it over.", "H", f"{RESPONSE} hard {DELEGATION} H", True),
}


@dataclass
class Episode:
    window: Window
    gold: list[str]  # the right decision per tick


def tokenizer():
    """A byte-level BPE (training/tiny.py's builder) with the protocol markers as single tokens."""
    from training.tiny import build_tokenizer

    texts = [SYSTEM, *[q for q, *_ in TASKS.values()], *[r for *_, r, _ in TASKS.values()], " ".join(NOISE)]
    tok = build_tokenizer(texts, vocab_size=512)
    tok.add_tokens([SILENCE, RESPONSE, DELEGATION])
    return tok


def tiny_model(tok, seed: int = 0, hidden: int = 64, layers: int = 2):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      tie_word_embeddings=True, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                      pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    return Qwen2ForCausalLM(cfg)


def processor(tok):
    """What ``TorchContext`` reads of a processor when no frame is shown: its tokenizer."""
    return SimpleNamespace(tokenizer=tok, save_pretrained=tok.save_pretrained)


def episode(seed: int, ticks: int, tok, hint_marker: str = "Reference answers:") -> Episode:
    rng = random.Random(seed)
    task = rng.choice(sorted(TASKS))
    query, sym, reply, delegate = TASKS[task]
    other = next(s for name, (_, s, *_r) in TASKS.items() if name != task)
    symbols = [rng.choice(NOISE) for _ in range(ticks)]
    onset = rng.randint(2, ticks - 3)
    symbols[onset] = sym
    if rng.random() < 0.5:
        d = rng.choice([t for t in range(1, ticks) if abs(t - onset) > 2])
        symbols[d] = other
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    obs = []
    for t, s in enumerate(symbols):
        text = (f"{QUERY_HEADER}\n{query}\n" if t == 0 else "") + f"{time_marker(t)} {s}"
        obs.append(Obs(enc(CHATML.turn(text, None, t == 0))))
    exp = [Expected(reply, onset, (onset, onset + 2), [sym], delegate)]
    hint = f"{hint_marker} at {onset} s: {reply}"
    w = Window(f"ss{seed}", [Obs(enc(CHATML.chunk_start(SYSTEM, "")))], [], obs, exp, 0, hint)
    gold = [reply if t == onset else SILENCE for t in range(ticks)]
    return Episode(w, gold)


def episodes(seeds, ticks: int, tok, hint_marker: str = "Reference answers:") -> list[Episode]:
    return [episode(s, ticks, tok, hint_marker) for s in seeds]


def sft(model, tok, eps: list[Episode], steps: int, lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Weighted SFT on the gold decisions (training/loss.py, training/weights.py), laid out by a forced
    rollout: the labels are exactly the committed decision tokens."""
    from training.loss import IGNORE, weighted_sft_loss
    from training.rl.config import RolloutConfig
    from training.weights import tick_weights

    roller = Roller(model, processor(tok), RolloutConfig())
    seqs = []
    for ep in eps:
        r = roller.roll(ep.window, 0, forced=ep.gold)
        ids = torch.tensor(r.ids)
        labels = torch.full_like(ids, IGNORE)
        weights = torch.zeros(len(ids))
        for d, w in zip(r.decided, tick_weights(ep.gold), strict=True):
            n = len(tok(d.raw.strip(), add_special_tokens=False)["input_ids"]) + 1  # + <|im_end|>
            labels[d.start:d.start + n] = ids[d.start:d.start + n]
            weights[d.start:d.start + n] = w
        seqs.append((ids, labels, weights))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for _ in range(steps):
        ids, labels, weights = seqs[int(torch.randint(len(seqs), (1,), generator=g))]
        loss = weighted_sft_loss(model(input_ids=ids[None]).logits, labels[None], weights[None])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def save(model, tok, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "symbolstream").write_text("a SymbolStream proxy model (training/rl/symbolstream.py)\n")
    return out


def is_symbolstream(path: str | Path) -> bool:
    return (Path(path) / "symbolstream").is_file()


def load(path: str | Path):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(path))
    return Qwen2ForCausalLM.from_pretrained(str(path)), tok
