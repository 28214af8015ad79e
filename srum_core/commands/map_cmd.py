"""``python -m srum_core map``: turn SRUM JSONL records into dense reward maps (pixel and token views)."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import numpy as np

from ..config import GRID_MODES, MAP_MODES, RewardConfig
from ..limits import MAX_IMAGE_SIDE
from ..records import load_records, records_to_reports
from ..rewards import MissingGlobalScore, build_reward_map
from . import CliError

logger = logging.getLogger(__name__)


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,9})\s*[xX×]\s*(\d{1,9})\s*", text)
    if match is None or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise argparse.ArgumentTypeError(f"--size {text[:40]!r}: write it as WIDTHxHEIGHT, e.g. 1024x1024")
    width, height = int(match.group(1)), int(match.group(2))
    if max(width, height) > MAX_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"--size {text!r}: each side must be at most {MAX_IMAGE_SIDE} pixels")
    return width, height


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "map",
        help="build dense reward maps from SRUM JSONL records",
        description=(
            "Read SRUM scoring or training records (JSONL) and write, for the i-th valid record, float32 arrays "
            "pixel_<i> (H x W) and token_<i> (H/N x W/N) to an .npz file, plus line_numbers (the JSONL line of each "
            "i). Bad lines and records the chosen mode cannot use are reported on stderr and skipped."
        ),
    )
    p.add_argument("records", type=Path, help="SRUM records, one JSON object per line (scoring or training format)")
    p.add_argument("--mode", choices=MAP_MODES, default="released", help="reward map variant (default: released)")
    p.add_argument(
        "--grid", choices=GRID_MODES, default="bilinear", help="pixel → token projection (default: bilinear)"
    )
    p.add_argument(
        "--token-size",
        type=_positive,
        default=16,
        help="pixels per token side N (default: 16, BAGEL/Janus-Pro at 384 px)",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=None,
        help="image size WxH; default: from each record's global box [0, 0, W, H]",
    )
    p.add_argument("--out", type=Path, required=True, help="output .npz file (must not exist unless --force)")
    p.add_argument(
        "--overlay",
        type=Path,
        default=None,
        help="folder for PNG heatmap overlays (written where the record's image file is found)",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(handler=run)


def _find_image(image_file: str | None, records_path: Path) -> Path | None:
    if not image_file:
        return None
    candidate = Path(image_file)
    for path in (candidate, records_path.parent / candidate):
        if path.is_file():
            return path
    return None


def run(args: argparse.Namespace) -> int:
    if not args.records.is_file():
        raise CliError(f"records file {args.records} does not exist")
    if args.out.exists() and not args.force:
        raise CliError(f"{args.out} already exists; choose another --out or pass --force")
    if args.out.suffix != ".npz":
        raise CliError(f"--out {args.out}: the output is a numpy archive; give it the .npz suffix")
    config = RewardConfig(mode=args.mode, grid=args.grid)
    loaded = load_records(args.records)
    for bad in loaded.bad_lines:
        logger.warning(f"{args.records}:{bad}")
    reports, unsized = records_to_reports(loaded.records, args.size)
    for bad in unsized:
        logger.warning(f"{args.records}:{bad} (pass --size WxH)")

    arrays: dict[str, np.ndarray] = {}
    lines: list[int] = []
    overlays = 0
    for number, report in reports:
        try:
            reward_map = build_reward_map(report, config, args.token_size)
        except MissingGlobalScore as err:
            logger.warning(f"{args.records}:line {number}: skipped: {err}")
            continue
        except ValueError as err:
            raise CliError(f"line {number}: {err}") from err
        i = len(lines)
        arrays[f"pixel_{i}"] = reward_map.pixel
        arrays[f"token_{i}"] = reward_map.token
        lines.append(number)
        if args.overlay is not None:
            image_path = _find_image(report.image_file, args.records)
            if image_path is None:
                logger.warning(f"line {number}: image {report.image_file!r} not found; no overlay")
                continue
            from PIL import Image

            from ..overlay import overlay_heatmap

            args.overlay.mkdir(parents=True, exist_ok=True)
            with Image.open(image_path) as image:
                if image.size != (report.width, report.height):
                    image = image.resize((report.width, report.height))
                lo = min(0.0, float(reward_map.pixel.min()))
                overlay_heatmap(image, reward_map.pixel, lo=lo, hi=1.0).save(args.overlay / f"overlay_{i}.png")
            overlays += 1

    if not lines:
        raise CliError(f"no usable records in {args.records} ({loaded.summary().splitlines()[0]})")
    arrays["line_numbers"] = np.asarray(lines, dtype=np.int64)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(args.out)
    skipped = len(loaded.bad_lines) + len(unsized) + len(reports) - len(lines)
    print(
        f"wrote {len(lines)} maps ({args.mode}, {args.grid}, token {args.token_size}px) to {args.out}"
        f"{f'; {overlays} overlays in {args.overlay}' if args.overlay else ''}; {skipped} lines skipped"
    )
    return 0
