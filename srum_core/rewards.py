"""SRUM's dense reward maps and loss, as pure functions (SRUM_SPEC §1.5–1.7).

Map modes (all return a ``(H, W)`` float32 pixel map ``r``):

- ``released`` — the authors' code: ``M = 0.5`` everywhere, each box writes ``max(M, (s+1)/2)`` inside it
  (clamped to the image), ``R = M · (g+1)/2``; no usable regions → uniform ``0.5 · (g+1)/2``. Because of the 0.5
  floor and ``max``, a negative region score has no effect.
- ``signed`` — the paper's form: background 0, each box writes its score ``s`` (overlaps: ``max``), weight
  ``α·R`` with ``α = (g+1)/2``; the loss clamps the total per-token weight ``r + λ`` at ≥ 0.
- ``binary`` — region scores mapped to ±1 first (``1 if s > 0 else -1``, as the released ablation), then
  ``released``; the global score stays continuous.
- ``global-only`` — the released "no regions" case: uniform ``0.5 · (g+1)/2``.
- ``local-only`` — ``released`` with ``α = 1`` (no global factor); needs no global score.
- ``sft`` — uniform weight 1: plain fine-tuning on the same self-generated images; needs no judgement.

Token projection (``(H/N, W/N)``, row-major): ``bilinear`` (``align_corners=False``, exactly as released; a box
thinner than a token can vanish) or ``area`` (mean over each N×N block; every pixel counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import GRID_MODES, MAP_MODES, RewardConfig
from .types import RewardMap, RewardReport

#: Modes that read the global score ``g``; a report without a usable one cannot give these maps.
NEEDS_GLOBAL: frozenset[str] = frozenset({"released", "signed", "binary", "global-only"})


class MissingGlobalScore(ValueError):
    """The global judgement was not read, so this map mode cannot be built (SRUM drops such images)."""


def _global_factor(report: RewardReport, mode: str) -> float:
    g = report.global_judgement.score
    if not report.global_judgement.usable or g is None:
        raise MissingGlobalScore(
            f"map mode {mode!r} needs the global score, but its parse status is "
            f"{report.global_judgement.parse_status!r}; such images are left out of training "
            "(use mode 'local-only' or 'sft' to build a map without it)"
        )
    g = float(np.clip(g, -1.0, 1.0))
    return (g + 1.0) / 2.0


def _paint_max(base: np.ndarray, report: RewardReport, values: list[float]) -> np.ndarray:
    """Write ``max(base, value)`` inside each usable region's box, clamped to the image."""
    height, width = base.shape
    for judgement, value in zip(report.usable_regions, values):
        x1, y1, x2, y2 = judgement.region.clamped(width, height).box
        if x2 <= x1 or y2 <= y1:
            continue  # the box lies entirely off the image
        patch = base[y1:y2, x1:x2]
        np.maximum(patch, np.float32(value), out=patch)
    return base


def build_pixel_map(report: RewardReport, mode: str) -> np.ndarray:
    """The ``(H, W)`` float32 reward map of ``report`` in map ``mode`` (see the module docstring)."""
    if mode not in MAP_MODES:
        raise ValueError(f"map mode {mode!r} is unknown; choose one of {', '.join(MAP_MODES)}")
    if report.width <= 0 or report.height <= 0:
        raise ValueError(f"image size {report.width}x{report.height} is empty; give a positive width and height")
    shape = (report.height, report.width)
    if mode == "sft":
        return np.ones(shape, dtype=np.float32)

    scores = [float(np.clip(r.score, -1.0, 1.0)) for r in report.usable_regions]
    if mode == "global-only":
        return np.full(shape, 0.5 * _global_factor(report, mode), dtype=np.float32)
    if mode == "signed":
        alpha = _global_factor(report, mode)
        # Background 0; overlapping boxes keep the larger score, as the released map does.
        regional = np.full(shape, -np.inf, dtype=np.float32)
        regional = _paint_max(regional, report, scores)
        regional[np.isneginf(regional)] = 0.0
        return (alpha * regional).astype(np.float32)

    if mode == "binary":
        scores = [1.0 if s > 0 else -1.0 for s in scores]
    floor = np.full(shape, 0.5, dtype=np.float32)
    local = _paint_max(floor, report, [(s + 1.0) / 2.0 for s in scores])
    alpha = 1.0 if mode == "local-only" else _global_factor(report, mode)
    return (local * np.float32(alpha)).astype(np.float32)


def token_grid_shape(width: int, height: int, token_size: int) -> tuple[int, int]:
    """``(rows, cols)`` of a token grid with ``token_size``-pixel tokens; the image must tile exactly."""
    if token_size <= 0:
        raise ValueError(f"token_size={token_size}: give the pixels per token side, a positive integer")
    if width % token_size or height % token_size:
        raise ValueError(
            f"a {width}x{height} image does not tile into {token_size}-pixel tokens; "
            f"use a token size that divides both sides"
        )
    return height // token_size, width // token_size


def project_to_tokens(pixel: np.ndarray, token_size: int, grid: str) -> np.ndarray:
    """Project an ``(H, W)`` pixel map onto the ``(H/N, W/N)`` token grid, N = ``token_size``."""
    if grid not in GRID_MODES:
        raise ValueError(f"grid {grid!r} is unknown; choose one of {', '.join(GRID_MODES)}")
    rows, cols = token_grid_shape(pixel.shape[1], pixel.shape[0], token_size)
    tensor = torch.from_numpy(np.ascontiguousarray(pixel, dtype=np.float32))[None, None]
    if grid == "bilinear":
        out = F.interpolate(tensor, size=(rows, cols), mode="bilinear", align_corners=False)
    else:
        out = F.avg_pool2d(tensor, kernel_size=token_size, stride=token_size)
    return out[0, 0].numpy().astype(np.float32)


def build_reward_map(report: RewardReport, reward_config: RewardConfig, token_size: int) -> RewardMap:
    """Both views of ``report``'s reward map under ``reward_config`` for a generator with ``token_size`` tokens."""
    pixel = build_pixel_map(report, reward_config.mode)
    token = project_to_tokens(pixel, token_size, reward_config.grid)
    g = report.global_judgement.score if report.global_judgement.usable else None
    return RewardMap(
        pixel=pixel,
        token=token,
        mode=reward_config.mode,
        grid=reward_config.grid,
        token_size=token_size,
        global_score=g,
    )


@dataclass(frozen=True)
class LossTerms:
    """``total = reward_term + constraint_term`` (scalar tensors); ``reward_term = mean(w·e)``,
    ``constraint_term = λ·mean(e)``."""

    total: torch.Tensor
    reward_term: torch.Tensor
    constraint_term: torch.Tensor


def srum_loss(errors: torch.Tensor, weights: torch.Tensor, lam: float) -> LossTerms:
    """SRUM's loss ``L = mean_i(w_i · e_i) + λ · mean_i(e_i)`` (SRUM_SPEC §1.7).

    ``errors``: ``(B, N)`` per-token losses ``e_i`` (squared velocity error or cross-entropy), ``≥ 0``.
    ``weights``: ``(B, N)`` token reward weights ``w_i`` from :func:`build_reward_map`.
    Weights below ``-λ`` are raised to ``-λ`` so every per-token total weight ``w_i + λ`` is ``≥ 0``: a negative
    weight on a squared error would otherwise be unbounded below (signed maps).
    """
    if errors.shape != weights.shape:
        raise ValueError(
            f"errors {tuple(errors.shape)} and weights {tuple(weights.shape)} must have the same (B, N) shape"
        )
    if lam < 0:
        raise ValueError(f"lam={lam}: λ must be ≥ 0")
    w = weights.to(device=errors.device, dtype=errors.dtype).clamp(min=-float(lam))
    reward_term = (w * errors).mean()
    constraint_term = float(lam) * errors.mean()
    return LossTerms(total=reward_term + constraint_term, reward_term=reward_term, constraint_term=constraint_term)
