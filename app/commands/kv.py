"""``presence kv profile --model M [--out PLAN.json]`` — measure the TailorKV layer plan of a model.

Per layer: the attention mass outside each query's top 5% of keys on a calibration text; layers above
the threshold are kept quantized (they need global context), the others become sparse (top-k
retrieval). The plan is written beside the model, where the torch backend's tailor cache finds it.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_OK, EXIT_USAGE, EXIT_MODEL = 0, 2, 4


def register(sub) -> None:
    p = sub.add_parser("kv", help="KV cache tools (TailorKV layer plan)")
    ksub = p.add_subparsers(dest="kv_command")
    prof = ksub.add_parser("profile", help="measure which layers to quantize and which to make sparse")
    prof.add_argument("--model", required=True, help="a transformers model directory or a .gguf file")
    prof.add_argument("--out", default=None, help="plan path (default: beside the model)")
    prof.add_argument("--text", default=None, help="calibration text file (default: bundled long text)")
    prof.add_argument("--tokens", type=int, default=2048, help="calibration length in tokens")
    prof.add_argument("--threshold", type=float, default=0.2, help="score above which a layer is quantized")
    prof.set_defaults(func=cmd_profile)
    p.set_defaults(func=lambda args: _usage())


def _usage() -> int:
    sys.stderr.write("presence: error: kv needs a subcommand: profile (see presence kv --help)\n")
    return EXIT_USAGE


def load_text_model(model: str):
    """(model, tokenizer) in fp32 on CPU from a directory (VLM or causal LM) or a single .gguf file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    p = Path(model).expanduser()
    if p.suffix == ".gguf":
        kw = dict(gguf_file=p.name, dtype=torch.float32)
        return (AutoModelForCausalLM.from_pretrained(str(p.parent), **kw).eval(),
                AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name))
    try:
        m = AutoModelForImageTextToText.from_pretrained(str(p), local_files_only=True, dtype=torch.float32)
    except (ValueError, KeyError):
        m = AutoModelForCausalLM.from_pretrained(str(p), local_files_only=True, dtype=torch.float32)
    return m.eval(), AutoTokenizer.from_pretrained(str(p), local_files_only=True)


def cmd_profile(args) -> int:
    from engine.kv.plan import plan_path_for
    from engine.kv.profile import profile_layers
    from engine.kv.text import long_text

    if not Path(args.model).expanduser().exists():
        sys.stderr.write(f"presence: error: model '{args.model}' not found\n")
        return EXIT_MODEL
    if args.tokens < 64 or not 0 < args.threshold < 1:
        sys.stderr.write("presence: error: --tokens must be >= 64 and --threshold in (0, 1)\n")
        return EXIT_USAGE
    try:
        text, source = (Path(args.text).read_text(errors="replace"), args.text) if args.text else long_text()
    except OSError as exc:
        sys.stderr.write(f"presence: error: cannot read --text: {exc.strerror}\n")
        return EXIT_USAGE
    try:
        model, tok = load_text_model(args.model)
    except Exception as exc:  # noqa: BLE001 - any loader failure is one readable line
        sys.stderr.write(f"presence: error: cannot load model '{args.model}': {str(exc).splitlines()[0]}\n")
        return EXIT_MODEL
    ids = tok(text, return_tensors="pt").input_ids[:, : args.tokens]
    plan = profile_layers(model, ids, threshold=args.threshold)
    plan.model = str(args.model)
    out = Path(args.out) if args.out else plan_path_for(Path(args.model).expanduser())
    try:
        plan.save(out)
    except OSError as exc:
        sys.stderr.write(f"presence: error: cannot write {out}: {exc.strerror}\n")
        return EXIT_USAGE
    print(f"calibration: {ids.shape[1]} tokens of {source}")
    print("layer  score  kind")
    q = set(plan.quantized_layers)
    for i, s in enumerate(plan.scores):
        print(f"{i:5d}  {s:.3f}  {'quantized' if i in q else 'sparse'}")
    print(f"plan: {len(plan.quantized_layers)} quantized, {len(plan.sparse_layers)} sparse -> {out}")
    return EXIT_OK
