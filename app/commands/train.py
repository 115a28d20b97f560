"""``presence train sft | export | eval`` (docs/training.md).

    presence train sft --model DIR --data DATASET… --out RUN [--steps N] [--lora] [--resume] …
    presence train sft --init-tiny --data DATASET… --out RUN      # a tiny model built from config
    presence train export --session ID… --out DATASET [--store FILE] [--no-corrections]
    presence train export --model RUN/model --gguf OUT_DIR        # GGUF + mmproj for --backend llamacpp
    presence train eval --suite DIR --model RUN/model --out REPORT [--backend torch,llamacpp]

Exit codes: 0 ok, 2 usage (bad dataset, bad arguments), 4 the model cannot be loaded or converted,
130 interrupted (a resumable checkpoint was written: rerun with ``--resume``).
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 2, 4, 130


def _err(code: int, message: str) -> int:
    sys.stderr.write(f"presence: error: {message}\n")
    return code


def cmd_sft(args) -> int:
    try:
        from training.config import LoraConfig, TrainConfig
        from training.dataset import DatasetError, read_dataset
        from training.trainer import TrainError, train
        from training.weights import WeightConfig
    except ImportError as exc:
        return _err(EXIT_USAGE, f"training needs torch and transformers: pip install 'presence[vlm,train]' ({exc})")
    if not args.model and not args.init_tiny:
        return _err(EXIT_USAGE, "give --model DIR (a checkpoint to fine-tune) or --init-tiny")
    try:
        weights = WeightConfig(args.w_response, args.w_first_silence, args.w_repeated_silence, args.w_context)
    except ValueError as exc:
        return _err(EXIT_USAGE, str(exc))
    lora = LoraConfig(args.lora_rank, args.lora_alpha, targets=args.lora_targets.split(","),
                      merge=not args.no_merge) if args.lora else None
    model = args.model
    if args.init_tiny and not args.resume:
        from training.tiny import build_tiny_model, dataset_texts

        try:
            anns = [a for d in args.data for a in read_dataset(d, skip_bad=args.skip_bad)[0]]
        except DatasetError as exc:
            return _err(EXIT_USAGE, str(exc))
        model = str(build_tiny_model(Path(args.out) / "init", dataset_texts(anns)))
    elif args.init_tiny:
        model = str(Path(args.out) / "init")
    cfg = TrainConfig(model=model, data=list(args.data), out=args.out, steps=args.steps, epochs=args.epochs,
                      lr=args.lr, warmup=args.warmup, seed=args.seed, device=args.device, dtype=args.dtype, lora=lora,
                      gradient_checkpointing=args.gradient_checkpointing, weights=weights, skip_bad=args.skip_bad,
                      save_every=args.save_every, mode=args.mode)
    cfg.hints.perception_hints = args.perception_hints
    if args.max_pixels:
        cfg.max_pixels = args.max_pixels
    try:
        out = train(cfg, resume=args.resume, progress=None if args.quiet else print, bar=not args.quiet)
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted: checkpoint in {Path(args.out) / 'checkpoint'}; continue with --resume\n")
        return EXIT_INTERRUPTED
    except DatasetError as exc:
        return _err(EXIT_USAGE, str(exc))
    except TrainError as exc:
        return _err(EXIT_MODEL if "cannot load" in str(exc) else EXIT_USAGE, str(exc))
    except RuntimeError as exc:  # peft missing and the like
        return _err(EXIT_USAGE, str(exc).splitlines()[0])
    print(f"wrote {out}")
    return EXIT_OK


def _find_store(session: str, store: str | None) -> Path | None:
    if store:
        return Path(store)
    from app.config import data_dir

    for p in sorted((data_dir() / "sessions").glob("*.sqlite")):
        if session in p.stem:
            return p
    return None


def cmd_export(args) -> int:
    if args.gguf:
        return _export_gguf(args)
    if not args.session or not args.out:
        return _err(EXIT_USAGE, "give --session ID… --out DIR (or --model DIR --gguf OUT)")
    from training.corrections import CorrectionError, CorrectionStore, export_session

    for sid in args.session:
        path = _find_store(sid, args.store)
        if path is None or not path.is_file():
            return _err(EXIT_USAGE, f"session {sid}: no session store found (give --store FILE)")
        store = CorrectionStore(path)
        try:
            out = export_session(store, sid, args.out, args.standing_weight, not args.no_corrections)
        except CorrectionError as exc:
            return _err(EXIT_USAGE, str(exc))
        finally:
            store.close()
        print(f"wrote {out}")
    return EXIT_OK


def _export_gguf(args) -> int:
    from training.gguf import GGUFError, convert

    if not args.model:
        return _err(EXIT_USAGE, "--gguf needs --model DIR (a Hugging Face checkpoint)")
    try:
        model, mmproj = convert(args.model, args.gguf, args.outtype)
    except GGUFError as exc:
        return _err(EXIT_MODEL, str(exc))
    print(f"wrote {model}\nwrote {mmproj}")
    return EXIT_OK


def cmd_grpo(args) -> int:
    """GRPO from an SFT checkpoint (training/rl; --npo, --autonpo, --rlsd switch the add-ons on)."""
    try:
        from training.rl.config import RLConfig, RolloutConfig
        from training.rl.run import SYMBOLSTREAM, make_symbolstream_sft, train_grpo
        from training.rl.trainer import RLError
    except ImportError as exc:
        return _err(EXIT_USAGE, f"training needs torch and transformers: pip install 'presence[vlm,train]' ({exc})")
    init = args.init
    if args.init_symbolstream:
        if args.data != [SYMBOLSTREAM]:
            return _err(EXIT_USAGE, "--init-symbolstream goes with --data symbolstream")
        init = str(Path(args.out) / "init")
        if not args.resume:
            make_symbolstream_sft(init, steps=args.init_symbolstream, seed=args.seed, threads=args.threads)
    if not init:
        return _err(EXIT_USAGE, "give --init DIR (an SFT checkpoint, e.g. RUN/model of presence train sft)")
    try:
        cfg = RLConfig(init=init, data=list(args.data), out=args.out, steps=args.steps, lr=args.lr, seed=args.seed,
                       window=(args.window[0], args.window[1]), mode=args.mode, save_every=args.save_every,
                       threads=args.threads, eval_windows=args.eval_windows, rollout=RolloutConfig(group=args.group, temperature=args.temperature,
                                             max_tokens=args.max_tokens))
    except ValueError as exc:
        return _err(EXIT_USAGE, str(exc))
    cfg.npo.enabled, cfg.autonpo.enabled, cfg.rlsd.enabled = args.npo, args.autonpo, args.rlsd
    try:
        res = train_grpo(cfg, resume=args.resume, heldout=args.heldout or None, bar=not args.quiet,
                         progress=None if args.quiet else print)
    except KeyboardInterrupt:
        sys.stderr.write(f"interrupted: checkpoint in {Path(args.out) / 'checkpoint'}; continue with --resume\n")
        return EXIT_INTERRUPTED
    except RLError as exc:
        return _err(EXIT_MODEL if "cannot load" in str(exc) else EXIT_USAGE, str(exc))
    keys = ("reward", "success", "sw_f1", "po_hit_rate", "duplicate_rate", "false_alarms_per_min")
    print("held-out: " + ", ".join(f"{k} {res.get(k)}" for k in keys))
    print(f"wrote {Path(args.out) / 'model'}")
    return EXIT_OK


def cmd_eval(args) -> int:
    from app.commands.eval import cmd_run

    return cmd_run(args)


def register(sub) -> None:
    p = sub.add_parser("train", help="train the interaction model: weighted SFT, corrections export, eval")
    tsub = p.add_subparsers(dest="train_command", parser_class=type(p))
    s = tsub.add_parser("sft", help="weighted per-second SFT on dataset folders (the JoyAI recipe)")
    s.add_argument("--model", default="", help="checkpoint folder to start from")
    s.add_argument("--init-tiny", action="store_true", help="start from a tiny random Qwen2.5-VL built from config")
    s.add_argument("--data", nargs="+", required=True, help="dataset folders (annotations + videos)")
    s.add_argument("--out", required=True, help="run folder (checkpoint/, model/, metrics.jsonl)")
    s.add_argument("--steps", type=int, default=0, help="optimizer steps (0 = --epochs passes)")
    s.add_argument("--epochs", type=int, default=1)
    s.add_argument("--lr", type=float, default=1e-4)
    s.add_argument("--warmup", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--dtype", default="auto", help="auto: float32 on CPU, bfloat16 on CUDA")
    s.add_argument("--mode", default="prompt", choices=["prompt", "native"], help="system prompt the episodes carry")
    s.add_argument("--lora", action="store_true", help="LoRA through peft instead of full fine-tuning")
    s.add_argument("--lora-rank", type=int, default=16)
    s.add_argument("--lora-alpha", type=int, default=32)
    s.add_argument("--lora-targets", default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    s.add_argument("--no-merge", action="store_true", help="save the LoRA adapter only, not a merged checkpoint")
    s.add_argument("--gradient-checkpointing", action="store_true")
    s.add_argument("--w-response", type=float, default=1.5, help="weight of a response onset")
    s.add_argument("--w-first-silence", type=float, default=1.0)
    s.add_argument("--w-repeated-silence", type=float, default=0.6, help="0.4–0.8")
    s.add_argument("--w-context", type=float, default=0.0,
                   help="weight of the stream's own tokens (hints, time markers; 0–1): 0 fine-tunes on decisions only, "
                        "as the reference; a model trained from scratch (--init-tiny) needs it (docs/training.md)")
    s.add_argument("--skip-bad", action="store_true", help="leave out bad annotations (each reported) instead of stopping")
    s.add_argument("--perception-hints", action="store_true",
                   help="turns carry the change score and the frame's OCR text (the model must then run with them)")
    s.add_argument("--max-pixels", type=int, default=0,
                   help="the session's frame size in training (0 = the session default; match [capture] max_pixels)")
    s.add_argument("--save-every", type=int, default=50)
    s.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint (same data order and RNG)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_sft)
    e = tsub.add_parser("export", help="corrected sessions → per-second dataset; or a checkpoint → GGUF")
    e.add_argument("--session", nargs="+", default=[], help="session ids")
    e.add_argument("--out", default="", help="dataset folder to write")
    e.add_argument("--store", default=None, help="the session store file (default: found in the data dir)")
    e.add_argument("--standing-weight", type=float, default=0.5,
                   help="loss weight of seconds the user left uncorrected (corrected ones: 1.0)")
    e.add_argument("--no-corrections", action="store_true", help="export the model's own decisions only")
    e.add_argument("--model", default="", help="with --gguf: the checkpoint to convert")
    e.add_argument("--gguf", default="", help="write MODEL.gguf + mmproj here (llama.cpp)")
    e.add_argument("--outtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"])
    e.set_defaults(func=cmd_export)
    v = tsub.add_parser("eval", help="score a trained model on a suite (same as `presence eval run`)")
    v.add_argument("--suite", required=True)
    v.add_argument("--model", required=True)
    v.add_argument("--backend", default="torch")
    v.add_argument("--out", required=True)
    v.add_argument("--quick", action="store_true")
    v.add_argument("--only", default="")
    v.add_argument("--no-plots", action="store_true")
    v.add_argument("--config", default=None)
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_eval)
    g = tsub.add_parser("grpo", help="GRPO on live episodes from an SFT checkpoint (NPO, AutoNPO, RLSD add-ons)")
    g.add_argument("--init", default="", help="the SFT checkpoint (RUN/model of presence train sft)")
    g.add_argument("--init-symbolstream", type=int, default=0, metavar="STEPS",
                   help="with --data symbolstream: build the tiny proxy model and SFT it this many steps first")
    g.add_argument("--data", nargs="+", required=True, help="dataset folders, or 'symbolstream' (the CPU proxy)")
    g.add_argument("--heldout", nargs="*", default=[], help="held-out dataset folders (default: every fifth clip)")
    g.add_argument("--out", required=True, help="run folder (checkpoint/, model/, metrics.jsonl)")
    g.add_argument("--steps", type=int, default=100, help="optimizer updates in all (NPO's scout included)")
    g.add_argument("--group", type=int, default=8, help="rollouts per window (4–16)")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--max-tokens", type=int, default=24, help="most tokens one sampled decision may take")
    g.add_argument("--lr", type=float, default=1e-5)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--window", type=int, nargs=2, default=[20, 60], metavar=("MIN", "MAX"), help="ticks per episode")
    g.add_argument("--mode", default="prompt", choices=["prompt", "native"], help="system prompt the episodes carry")
    g.add_argument("--npo", action="store_true", help="NPO: a scout run's guides for gated windows")
    g.add_argument("--autonpo", action="store_true", help="AutoNPO: roll back with guides on a plateau")
    g.add_argument("--rlsd", action="store_true", help="RLSD: a frozen teacher with the annotation weights tokens")
    g.add_argument("--save-every", type=int, default=10)
    g.add_argument("--eval-windows", type=int, default=0, help="held-out windows scored at the end (0 = all)")
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    g.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint (same rollouts and RNG)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_grpo)
    p.set_defaults(func=lambda a: _err(EXIT_USAGE, "choose a subcommand: presence train sft | export | eval"))
