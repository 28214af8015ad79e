"""Small pieces shared by the backends whose judge reads images as a vision-language model (Janus, BAGEL, pair):
an image as RGB PIL, a region's crop, and the judgements of a P("Yes") (likelihood) judge.

No heavy import at module import; PIL is imported when an image is converted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .types import GlobalJudgement, Region, RegionJudgement


def as_pil(image: Any) -> Any:
    """``image`` (PIL or an ``(H, W, 3)`` uint8 array) as an RGB PIL image; anything else is a TypeError."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    raise TypeError(f"expected a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")


def crop(image: Any, region: Region) -> Any:
    """The pixels of ``region`` (at least one pixel each way)."""
    x1, y1, x2, y2 = region.box
    return image.crop((x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)))


def likelihood_global(p_yes: float, question: str) -> GlobalJudgement:
    """The global judgement of a P("Yes") judge: score ``2·p − 1``."""
    return GlobalJudgement(
        score=2.0 * p_yes - 1.0,
        reason=f"P(Yes) = {p_yes:.3f} against No",
        raw_text=f"P(Yes)={p_yes:.6f}",
        parse_status="ok",
        raw_score=p_yes,
        question=question,
    )


def likelihood_region(region: Region, p_yes: float, question: str) -> RegionJudgement:
    """The judgement of one region by a P("Yes") judge: score ``2·p − 1``."""
    return RegionJudgement(
        region=region,
        object_name=region.label or "",
        score=2.0 * p_yes - 1.0,
        reason=f"P(Yes) = {p_yes:.3f} against No",
        raw_text=f"P(Yes)={p_yes:.6f}",
        parse_status="ok",
        raw_score=p_yes,
        question=question,
    )
