"""Box geometry shared by the box sources: IoU, non-maximum suppression, mask → box, clamping, RGB input.

Boxes are ``[x1, y1, x2, y2]`` pixel coordinates with exclusive ends.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` boxes ``[x1, y1, x2, y2]`` → ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Greedy non-maximum suppression: indices kept, highest score first."""
    order = list(np.argsort(-np.asarray(scores), kind="stable"))
    keep: list[int] = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    while order:
        best = order.pop(0)
        keep.append(int(best))
        if order:
            ious = box_iou(boxes[best : best + 1], boxes[order])[0]
            order = [i for i, iou in zip(order, ious) if iou <= iou_threshold]
    return keep


def mask_to_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The tight integer box of a boolean ``(H, W)`` mask, exclusive ends; None for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def clamp_box(box: Any, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` (any order of corners, floats) as integer pixels inside a ``width`` x ``height`` image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    return (
        int(min(max(np.floor(x1), 0), width)),
        int(min(max(np.floor(y1), 0), height)),
        int(min(max(np.ceil(x2), 0), width)),
        int(min(max(np.ceil(y2), 0), height)),
    )


def as_rgb(image: Any) -> Any:
    """A PIL RGB image from a PIL image or an ``(H, W, 3)`` uint8 array."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")
    return image.convert("RGB")
