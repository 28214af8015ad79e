"""``prompts`` and ``verify``: a backend's prompt sets and its independent referee on the command line.

Both ask the backend (``--backend``, default ``sandbox``) through its contract: ``prompt_sets`` / ``prompts`` /
``categories`` for ``prompts``, ``referee`` for ``verify``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import CliError
from .round_cmd import add_model_flags, backend_from_args

DEFAULT_BACKEND = "sandbox"


def register(subparsers: argparse._SubParsersAction) -> None:
    prompts = subparsers.add_parser(
        "prompts",
        help="print prompts of a backend's prompt set as JSON lines",
        description="Deterministic prompts of one of the backend's prompt sets. The sandbox world's validation set "
        "holds (colour, shape) pairings that its training prompts never contain.",
    )
    _add_backend_flags(prompts)
    prompts.add_argument("--split", default="train", help="prompt set of the backend (sandbox: train or val)")
    prompts.add_argument(
        "--category",
        default=None,
        help="one category (sandbox: single, color, shape, texture, spatial, numeracy, complex); default: a mix",
    )
    prompts.add_argument("--n", type=int, default=10, help="how many prompts (default 10)")
    prompts.add_argument("--seed", type=int, default=None, help="random seed; omitted: one is drawn and reported")
    prompts.set_defaults(handler=run_prompts)

    verify = subparsers.add_parser(
        "verify",
        help="judge generated images with the backend's independent referee (the sandbox world has one)",
        description="Reads DIR/generation.jsonl ({prompt, seed, file, settings, backend} per line), writes one "
        "verdict per image and prints the accuracy per category. The referee is rule-based and never used in "
        "training or self-judging.",
    )
    verify.add_argument("--images", required=True, help="folder holding generation.jsonl and the images it lists")
    verify.add_argument("--out", required=True, help="verdicts JSONL to write")
    verify.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    _add_backend_flags(verify)
    verify.set_defaults(handler=run_verify)


def _add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default=DEFAULT_BACKEND, help=f"whose prompt sets to use (default {DEFAULT_BACKEND})")
    parser.add_argument("--model", default=None, help="weights folder or hub id for the backend (default: its own)")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps (default: cpu; nothing is generated)")
    add_model_flags(parser)


def _backend(args: argparse.Namespace):
    return backend_from_args(args)


def run_prompts(args: argparse.Namespace) -> int:
    if args.n < 0:
        raise CliError(f"--n {args.n}: ask for zero or more prompts")
    backend = _backend(args)
    if args.split not in backend.prompt_sets():
        offered = ", ".join(backend.prompt_sets()) or "none"
        raise CliError(f"--split {args.split!r}: backend {backend.name} offers the prompt sets: {offered}")
    if args.category is not None and args.category not in backend.categories():
        raise CliError(f"--category {args.category!r} is unknown; choose one of: {', '.join(backend.categories())}")
    seed = args.seed
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
        print(f"seed: {seed}", file=sys.stderr)
    categories = None if args.category is None else [args.category]
    for item in backend.prompts(args.split, categories, args.n, seed):
        print(json.dumps({"prompt": item.text, "category": item.category, "split": args.split, "spec": item.spec}))
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
    from ..types import PromptItem

    folder = Path(args.images)
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists; pass --force to overwrite it or choose another --out")
    entries = _read_generation(folder)
    backend = _backend(args)
    referee = backend.referee()
    if referee is None:
        raise CliError(f"backend {backend.name} has no referee; only its own judge can score these images (`score`)")
    rows = []
    for entry in entries:
        with Image.open(folder / entry["file"]) as img:
            verdict = referee(img.convert("RGB"), PromptItem(text=str(entry["prompt"])))
        rows.append({"file": entry["file"], **_verdict_row(str(entry["prompt"]), verdict)})
    write_jsonl(out, rows, overwrite=args.force)
    summary = _summarise(rows)
    print(f"{'category':<10} {'n':>5} {'passed':>7} {'accuracy':>9}")
    for name in [*backend.categories(), "all"]:
        if name in summary:
            entry = summary[name]
            print(f"{name:<10} {entry['n']:>5} {entry['passed']:>7} {entry['passed'] / entry['n']:>9.3f}")
    if "unjudged" in summary:
        print(f"{summary['unjudged']['n']} image(s) had prompts the referee cannot judge (passed: null)")
    print(f"verdicts: {out}")
    return 0


def _verdict_row(prompt: str, verdict) -> dict:
    """One JSON line: the verdict, or why the prompt could not be judged (counted, never dropped)."""
    if verdict.passed is None:
        return {"prompt": prompt, "category": None, "passed": None, "error": verdict.notes}
    return {
        "prompt": prompt,
        "category": verdict.category,
        "passed": verdict.passed,
        "checks": dict(verdict.checks),
        **verdict.details,
        "notes": verdict.notes,
    }


def _summarise(rows: list[dict]) -> dict[str, dict[str, int]]:
    """``{"n", "passed"}`` per category and over ``"all"``; unjudged rows counted apart under ``"unjudged"``."""
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        names = ("unjudged",) if row["passed"] is None else (row["category"], "all")
        for name in names:
            entry = out.setdefault(name, {"n": 0, "passed": 0})
            entry["n"] += 1
            entry["passed"] += int(bool(row["passed"]))
    return out
