"""``generate`` and ``score``: make images with a backend, and let the same model score them (SRUM records).

    python -m srum_core generate --backend sandbox --prompt "a red circle" --n 4 --seed 0 --out out/gen
    python -m srum_core score --backend sandbox --images out/gen --out out/gen/scores.jsonl

``generate`` writes ``DIR/000.png …`` and ``DIR/generation.jsonl`` (one ``{"prompt", "seed", "file",
"settings", "backend"}`` line per image, seeds S, S+1, …). ``score`` reads that listing and writes one SRUM
scoring record per image through the round's own scoring path (:mod:`srum_core.scoring`: the chosen box
source's regions, the global judgement and one judgement per region).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import GENERATION_MODES, REGION_VIEWS, GenerationConfig, JudgeConfig, default_of, help_of
from ..protocol import check_generation_mode
from . import CliError
from .round_cmd import add_model_flags, backend_from_args
from .round_cmd import number as number_arg

LISTING = "generation.jsonl"


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", required=True, help="unified model to use (e.g. sandbox)")
    p.add_argument("--model", default=None, help="weights folder or hub id for the backend (default: its own)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    add_model_flags(p)


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser(
        "generate",
        help="generate images for one prompt with a backend (seeds S, S+1, ...)",
        description="Generate --n images of --prompt and list them in DIR/generation.jsonl.",
    )
    _add_model_flags(g)
    g.add_argument("--prompt", required=True, help="the text prompt")
    g.add_argument("--n", type=number_arg, default=1, help="number of images (default 1); image i uses seed S + i")
    g.add_argument("--seed", type=number_arg, default=None, help="first seed S (default: drawn at random and printed)")
    g.add_argument("--out", type=Path, required=True, help="output folder for PNGs and generation.jsonl")
    g.add_argument(
        "--steps",
        type=number_arg,
        default=None,
        help=f"{help_of(GenerationConfig, 'steps')} (default {default_of(GenerationConfig, 'steps')})",
    )
    g.add_argument(
        "--guidance",
        type=number_arg,
        default=None,
        help=f"{help_of(GenerationConfig, 'guidance')} (default {default_of(GenerationConfig, 'guidance')})",
    )
    g.add_argument(
        "--mode",
        default=None,
        choices=GENERATION_MODES,
        help="plain: the prompt alone; think: the model plans the scene first, then draws from prompt + plan "
        "(default: the backend's own; backends without a think mode refuse it)",
    )
    g.add_argument("--force", action="store_true", help="overwrite existing images / listing in --out")
    g.set_defaults(handler=run_generate)

    s = sub.add_parser(
        "score",
        help="score listed images with the backend's own judge; write SRUM scoring records",
        description="Read DIR/generation.jsonl and write one SRUM scoring record (JSONL) per listed image.",
    )
    _add_model_flags(s)
    s.add_argument("--images", type=Path, required=True, help="folder holding generation.jsonl and its images")
    s.add_argument("--out", type=Path, required=True, help="output JSONL of scoring records")
    s.add_argument("--box-source", default=None, help="region proposer (default: the backend's first)")
    s.add_argument(
        "--region-view", default="crop", choices=REGION_VIEWS, help="how the judge sees a region (default crop)"
    )
    s.add_argument(
        "--max-regions",
        type=number_arg,
        default=default_of(JudgeConfig, "max_regions"),
        help=f"{help_of(JudgeConfig, 'max_regions')} (default {default_of(JudgeConfig, 'max_regions')})",
    )
    s.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    s.set_defaults(handler=run_score)


def _load(args: argparse.Namespace):
    return backend_from_args(args)


def run_generate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..config import check_int
    from ..facade import check_prompt, check_seed, draw_seed

    prompt = check_prompt(args.prompt)
    n = check_int(args.n, "n", 1, 10_000, "--n: images to generate")
    config = GenerationConfig(device=args.device, mode=args.mode)
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    if args.guidance is not None:
        config = replace(config, guidance=args.guidance)
    seed = draw_seed(args.seed)
    check_seed(seed + n - 1)  # every image's seed S + i must be a valid seed
    out: Path = args.out
    files = [f"{i:03d}.png" for i in range(n)]
    clashes = [f for f in [*files, LISTING] if (out / f).exists()]
    if clashes and not args.force:
        raise CliError(
            f"{out} already holds {', '.join(clashes[:3])}{'...' if len(clashes) > 3 else ''}; "
            "pass --force to overwrite or choose another --out"
        )
    backend = _load(args)
    try:
        check_generation_mode(backend, args.mode)
    except ValueError as err:
        raise CliError(f"--{err}") from None
    seeds = [seed + i for i in range(n)]
    samples = backend.generate([prompt] * n, seeds, config)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, sample in zip(files, samples):
        sample.image.save(out / name)
        lines.append(
            {
                "prompt": sample.prompt,
                "seed": sample.seed,
                "file": name,
                "settings": sample.settings,
                "backend": backend.name,
                **({"plan": sample.settings["plan"]} if "plan" in (sample.settings or {}) else {}),
            }
        )
    (out / LISTING).write_text("".join(json.dumps(line) + "\n" for line in lines))
    print(f"wrote {len(samples)} images to {out} (seeds {seeds[0]}..{seeds[-1]})")
    return 0


def _read_listing(folder: Path) -> list[dict]:
    path = folder / LISTING
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --images must be a folder written by `generate`")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            raise CliError(f"{path}:{number}: not JSON ({err})") from err
        if not isinstance(entry, dict) or not {"prompt", "file"} <= set(entry):
            raise CliError(f'{path}:{number}: each line needs at least "prompt" and "file"')
        if not (folder / entry["file"]).is_file():
            raise FileNotFoundError(f"{path}:{number}: image {folder / entry['file']} is missing")
        entries.append(entry)
    if not entries:
        raise CliError(f"{path} lists no images")
    return entries


def run_score(args: argparse.Namespace) -> int:
    from PIL import Image

    from ..config import JudgeConfig
    from ..records import scoring_record_from_report, write_jsonl
    from ..scoring import judge_image, propose_image_regions

    judge = JudgeConfig(region_view=args.region_view, max_regions=args.max_regions, box_source=args.box_source)
    entries = _read_listing(args.images)
    if args.out.exists() and not args.force:
        raise CliError(f"{args.out} already exists; pass --force to overwrite it")
    backend = _load(args)
    records, scores, used = [], [], set()
    for entry in entries:
        image = Image.open(args.images / entry["file"]).convert("RGB")
        source, regions = propose_image_regions(backend, image, entry["prompt"], judge)
        report = judge_image(backend, image, entry["prompt"], regions, judge, image_file=entry["file"])
        records.append(scoring_record_from_report(report, entry["file"]))
        used.add(source)
        if report.global_judgement.score is not None:
            scores.append(report.global_judgement.score)
    write_jsonl(args.out, records, overwrite=args.force)
    mean = sum(scores) / len(scores) if scores else float("nan")
    print(f"wrote {len(records)} scoring records to {args.out} (box source {', '.join(sorted(used))}; "
          f"mean global score {mean:.3f})")
    return 0
