"""``actstore extract``: run a local model once over a prompt set into a cache."""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from actstore._jsonout import dumps

__all__ = ["config_from_args", "register"]

_EPILOG = """examples:
  actstore extract --model /models/Qwen2.5-32B --prompts multiplication --n 2000 \\
      --set-name arithmetic --layers 7,15,23,31,47,55,63 --out cache.zarr
  actstore extract --model /models/Qwen2.5-32B --prompts physics.jsonl --set-name physics \\
      --layers all --out cache.zarr --dry-run
  # a SLURM array of 8 workers filling one cache (re-run any of them to resume):
  actstore extract --model M --prompts p.jsonl --layers -1 --out cache.zarr \\
      --shard $SLURM_ARRAY_TASK_ID/8
  actstore extract --model M --prompts p.jsonl --backend tlens --hook hook_resid_mid,attn.hook_z \\
      --layers 0,1 --dtype float32 --out cache.zarr
  # the model continues each prompt (greedy, 128 tokens); prompt + continuation are captured:
  actstore extract --model M --prompts kinetic --n 30 --generate 128 --stop "\n\n" \\
      --find-span v2=label:v_squared --layers all --out cache.zarr --set-name kinetic_gen
"""


def _arg(p: Any, name: str, **kw: Any) -> None:
    """An option for ExtractConfig field *name*: flag, choices and default read from it."""
    from actstore.extractors import ExtractConfig

    param = ExtractConfig.param(name)
    if param.choices is not None and "action" not in kw:
        kw["choices"] = param.choices
    p.add_argument(param.flag, dest=name, default=ExtractConfig.default(name), **kw)


def register(subparsers: Any) -> None:
    """Add ``extract`` to the ``actstore`` command line (options from :class:`ExtractConfig`)."""
    from actstore.extractors import ExtractConfig

    p = subparsers.add_parser(
        "extract",
        help="run a local model once over prompts and store per-token activations",
        description=(
            "Run a local causal LM once over a prompt set and stream per-token activations "
            "(prompt, layer, token, d_model) into a Zarr v3 cache, block by block, exactly once. "
            "Killed runs resume when the same command is run again; a finished run does nothing."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="local checkpoint directory")
    p.add_argument(
        "--prompts", required=True, help="a prompt generator name or a .jsonl / .csv file"
    )
    p.add_argument("--out", required=True, help="cache path or fsspec URL (e.g. cache.zarr)")
    _arg(p, "set_name", help="prompt-set group name (default: the prompt set's name)")
    _arg(p, "n_prompts", type=int, help="number of prompts (generators; files: the first N)")
    _arg(p, "seed", type=int, help="generator seed (default 0)")
    _arg(
        p,
        "layers",
        help="'all', 'spaced:K' (K evenly spaced) or comma-separated indices, negatives from the "
        "end (docs/reference/extract.md)",
    )
    _arg(
        p,
        "other_depths",
        help="'all' or 'spaced:K': used when the --layers list does not fit the model's depth",
    )
    _arg(
        p,
        "hooks",
        help="comma-separated hooks: hf: resid_pre, attn_out, resid_mid, mlp_in, mlp_out, "
        "resid_post (one pass; docs/hooks.md); tlens: any per-block TransformerLens hook "
        "(hook_resid_mid, attn.hook_z, ...). Default resid_post",
    )
    _arg(p, "backend")
    _arg(p, "dtype", help="auto: bfloat16 on GPU, float32 on CPU")
    _arg(p, "device", help="auto, cpu, cuda (all GPUs) or cuda:N")
    _arg(
        p,
        "max_batch_tokens",
        type=int,
        help=f"padded tokens per forward pass (default {ExtractConfig.default('max_batch_tokens')}"
        "); lower it on out-of-memory",
    )
    _arg(
        p,
        "batch_window",
        type=int,
        help="blocks whose prompts are batched together (default: automatic, recorded in the "
        "cache; a resume uses the recorded one; docs/write-path.md)",
    )
    _arg(
        p,
        "positions",
        help="also store the activations at these positions (e.g. last,before:answer) in a "
        "small array that probe fitting reads instead of every token (docs/read-path.md)",
    )
    _arg(p, "shard", help="I/N: this worker fills the blocks of batching windows w %% N == I")
    _arg(
        p,
        "bos",
        help="auto: the tokenizer's default; prepend: ensure BOS first; none: no special tokens",
    )
    _arg(p, "block_size", type=int, help="prompts per store shard (default: ~128 MiB)")
    _arg(
        p,
        "codec",
        help="activation compression: zstd:LEVEL (default zstd:1), e.g. zstd:3, or none; "
        "see docs/write-path.md",
    )
    _arg(p, "dry_run", action="store_true", help="print the plan; load and write nothing")
    _arg(p, "progress", help="auto: a bar on a terminal, log lines otherwise")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _generation_args(p)
    p.set_defaults(func=_run)


def _generation_args(p: Any) -> None:
    g = p.add_argument_group("generated continuations (see docs/generation.md)")
    g.add_argument(
        "--generate",
        type=int,
        metavar="N",
        help="the model first continues each prompt by up to N tokens (greedy unless "
        "--do-sample); prompt + continuation are captured",
    )
    g.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold")
    g.add_argument(
        "--generate-seed", type=int, default=0, help="base seed of the per-prompt samplers"
    )
    g.add_argument("--stop", action="append", default=[], help="a stop string (repeat for several)")
    g.add_argument(
        "--chat-template",
        action="store_true",
        help="wrap each prompt in the tokenizer's chat template (one user turn) first",
    )
    g.add_argument(
        "--find-span",
        action="append",
        default=[],
        metavar="NAME=FINDER",
        help="a span in the continuation: NAME=label:COLUMN (first appearance of that label's "
        "number) or NAME=regex:PATTERN (first match); repeat for several",
    )


def _generate_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    from actstore.errors import InvalidArgumentError

    if args.generate is None:
        extra = [
            flag
            for flag, on in (
                ("--do-sample", args.do_sample),
                ("--temperature", args.temperature != 1.0),
                ("--top-p", args.top_p != 1.0),
                ("--generate-seed", args.generate_seed != 0),
                ("--stop", bool(args.stop)),
                ("--chat-template", args.chat_template),
                ("--find-span", bool(args.find_span)),
            )
            if on
        ]
        if extra:
            raise InvalidArgumentError(
                f"expected --generate N with {extra[0]}, got no --generate; add e.g. --generate 64"
            )
        return None
    return {
        "max_new_tokens": args.generate,
        "do_sample": args.do_sample,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.generate_seed,
        "stop": list(args.stop),
        "chat_template": args.chat_template,
        "find_spans": list(args.find_span),
    }


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~actstore.extractors.ExtractConfig` that ``actstore extract ARGS`` asks for.

    Raises
    ------
    InvalidArgumentError
        A value outside its choices (the message names the option).
    """
    import dataclasses

    from actstore.extractors import ExtractConfig

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExtractConfig)
             if hasattr(args, f.name)}  # fmt: skip
    given["generate"] = _generate_settings(args)
    given["command"] = "actstore " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return ExtractConfig(**given)


def _run(args: argparse.Namespace) -> int:
    from actstore.extractors import extract

    report = extract(config_from_args(args))
    if args.json:
        print(dumps(report.to_dict(), indent=2))
        return 0
    if report.status == "dry-run":
        print(report.plan.describe())
        print("dry run: no weights loaded, nothing written")
        return 0
    print(report.message)
    if report.status == "written":
        rate = report.tokens / report.seconds if report.seconds else 0.0
        print(
            f"{report.tokens} tokens in {report.seconds:.1f} s ({rate:,.0f} tok/s), "
            f"{report.bytes_written / 2**20:.1f} MiB before compression"
        )
    return 0
