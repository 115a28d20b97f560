"""Reinforcement on live episodes: GRPO with NPO / AutoNPO and RLSD (docs/training.md, "GRPO, NPO, RLSD").

    config.py       every knob, with its default and where it comes from
    reward.py       the verifiable episode reward, built on engine.eval.metrics
    rollout.py      a window rolled out tick by tick on the torch backend's live context; token scoring
    grpo.py         group-normalised advantages and the clipped token-mean loss
    rlsd.py         RLSD's per-token advantage reweighting, its λ schedule and the frozen teacher
    npo.py          NPO guide injection, AutoNPO's trigger and Δ choice, exact snapshots for rollback
    clips.py        windows from dataset clips (the SFT episodes' layout, training/episodes.py)
    symbolstream.py a synthetic per-tick environment and a tiny text model (the CPU proxy)
    trainer.py      the loop: rollouts → rewards → advantages → loss → AdamW; metrics.jsonl; resume
"""
