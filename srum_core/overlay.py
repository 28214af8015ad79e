"""Reward-map heatmaps over images, with no plotting library: a small fixed colour ramp and alpha blending."""

from __future__ import annotations

import numpy as np
from PIL import Image

# A perceptually ordered ramp (dark blue → teal → yellow) sampled at 5 stops; values in [lo, hi] map onto it.
_RAMP = np.array(
    [[48, 18, 59], [40, 110, 200], [35, 180, 150], [170, 220, 60], [250, 240, 30]],
    dtype=np.float32,
)


def colorize(values: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """``(H, W)`` floats → ``(H, W, 3)`` uint8 colours on the ramp, ``lo``/``hi`` at its ends."""
    span = hi - lo if hi > lo else 1.0
    t = np.clip((values.astype(np.float32) - lo) / span, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(t).astype(int)
    high = np.minimum(low + 1, len(_RAMP) - 1)
    frac = (t - low)[..., None]
    return (_RAMP[low] * (1 - frac) + _RAMP[high] * frac).round().astype(np.uint8)


def overlay_heatmap(
    image: Image.Image, values: np.ndarray, alpha: float = 0.55, lo: float = 0.0, hi: float = 1.0
) -> Image.Image:
    """``image`` with the map ``values`` (any resolution, nearest-resized to the image) blended on top."""
    heat = Image.fromarray(colorize(values, lo, hi)).resize(image.size, Image.NEAREST)
    return Image.blend(image.convert("RGB"), heat, alpha)
