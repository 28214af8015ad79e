"""``prompts`` and ``verify``: the sandbox world's prompt sets and its independent referee on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CliError

BACKENDS = ("sandbox",)


def register(subparsers: argparse._SubParsersAction) -> None:
    prompts = subparsers.add_parser(
        "prompts",
        help="print prompts of the sandbox world as JSON lines",
        description="Deterministic prompts of the synthetic world's grammar. The validation split holds "
        "(colour, shape) pairings that training prompts never contain.",
    )
    prompts.add_argument("--backend", default="sandbox", help="whose prompt grammar to use (only 'sandbox' has one)")
    prompts.add_argument("--split", choices=("train", "val"), default="train", help="train or held-out val prompts")
    prompts.add_argument(
        "--category",
        default=None,
        help="one category (single, color, shape, texture, spatial, numeracy, complex); default: a balanced mix",
    )
    prompts.add_argument("--n", type=int, default=10, help="how many prompts (default 10)")
    prompts.add_argument("--seed", type=int, default=None, help="random seed; omitted: one is drawn and reported")
    prompts.set_defaults(handler=run_prompts)

    verify = subparsers.add_parser(
        "verify",
        help="judge generated images of the sandbox world with the independent referee",
        description="Reads DIR/generation.jsonl ({prompt, seed, file, settings, backend} per line), writes one "
        "verdict per image and prints the accuracy per category. The referee is rule-based and never used in "
        "training or self-judging.",
    )
    verify.add_argument("--images", required=True, help="folder holding generation.jsonl and the images it lists")
    verify.add_argument("--out", required=True, help="verdicts JSONL to write")
    verify.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    verify.set_defaults(handler=run_verify)


def run_prompts(args: argparse.Namespace) -> int:
    from ..world.prompts import make_prompts, split_of
    from ..world.spec import CATEGORIES

    if args.backend not in BACKENDS:
        raise CliError(f"--backend {args.backend!r} has no prompt grammar; choose one of: {', '.join(BACKENDS)}")
    if args.category is not None and args.category not in CATEGORIES:
        raise CliError(f"--category {args.category!r} is unknown; choose one of: {', '.join(CATEGORIES)}")
    if args.n < 0:
        raise CliError(f"--n {args.n}: ask for zero or more prompts")
    seed = args.seed
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
        print(f"seed: {seed}", file=sys.stderr)
    for spec in make_prompts(args.split, args.category, args.n, seed):
        row = {"prompt": spec.text, "category": spec.category, "split": split_of(spec), "spec": spec.to_dict()}
        print(json.dumps(row))
    return 0


def _read_generation(folder: Path) -> list[dict]:
    listing = folder / "generation.jsonl"
    if not listing.is_file():
        raise CliError(f"{listing} not found; --images must be a folder written by `generate` (with generation.jsonl)")
    entries = []
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise CliError(f"{listing} line {number} is not JSON ({err.msg}); fix or remove that line") from err
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or "prompt" not in entry:
            raise CliError(f'{listing} line {number} needs at least a "prompt" and a "file"')
        entries.append(entry)
    missing = [e["file"] for e in entries if not (folder / e["file"]).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise CliError(f"images listed in {listing} are missing: {', '.join(missing[:3])}{more}")
    return entries


def run_verify(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..records import write_jsonl
    from ..world.referee import summarise, verdict_row
    from ..world.spec import CATEGORIES

    folder = Path(args.images)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists; pass --force to overwrite it or choose another --out")
    rows = []
    for entry in _read_generation(folder):
        with Image.open(folder / entry["file"]) as img:
            row = verdict_row(img.convert("RGB"), str(entry["prompt"]))
        rows.append({"file": entry["file"], **row})
    write_jsonl(out, rows, overwrite=args.force)
    summary = summarise(rows)
    print(f"{'category':<10} {'n':>5} {'passed':>7} {'accuracy':>9}")
    for name in CATEGORIES:
        if name not in summary:
            continue
        entry = summary[name]
        print(f"{name:<10} {entry['n']:>5} {entry['passed']:>7} {entry['accuracy']:>9.3f}")
    if "all" in summary:
        entry = summary["all"]
        print(f"{'all':<10} {entry['n']:>5} {entry['passed']:>7} {entry['accuracy']:>9.3f}")
    if "unjudged" in summary:
        print(f"{summary['unjudged']['n']} image(s) had prompts outside the world's grammar (passed: null)")
    print(f"verdicts: {out}")
    return 0
