"""SAM automatic masks as a box source (kind ``"automatic"``): SRUM's released choice (SRUM_SPEC §1.3).

A regular grid of point prompts, one mask per point (the best of SAM's three by predicted IoU), duplicates
removed by box NMS, each mask turned into its integer pixel box, sorted by mask area, the top K (10) kept;
background segments included, no labels. The model loads lazily via ``from_pretrained`` on first use.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..device import resolve_device
from ..types import Region
from .geometry import as_rgb, clamp_box, mask_to_box, nms

logger = logging.getLogger(__name__)


class SamAutomaticBoxes:
    """SAM "everything" proposals from a ``points_per_side``² grid of single-point prompts.

    ``iou_threshold``: masks whose predicted IoU is lower are dropped (SAM's own generator uses 0.88);
    ``nms_iou``: box IoU above which a lower-scoring mask counts as a duplicate; ``min_area``: masks smaller than
    this fraction of the image are dropped; ``points_per_batch``: prompts per mask-decoder call.
    """

    kind = "automatic"

    def __init__(
        self,
        model_id_or_path: str,
        points_per_side: int = 16,
        device: str = "auto",
        *,
        iou_threshold: float = 0.7,
        nms_iou: float = 0.7,
        min_area: float = 0.001,
        points_per_batch: int = 64,
    ):
        if not 1 <= points_per_side <= 64:
            raise ValueError(f"points_per_side={points_per_side}: use 1..64 (SAM's generator uses 32)")
        self.name = "sam"
        self.model_id = model_id_or_path
        self.points_per_side = int(points_per_side)
        self.device = device
        self.iou_threshold = float(iou_threshold)
        self.nms_iou = float(nms_iou)
        self.min_area = float(min_area)
        self.points_per_batch = int(points_per_batch)
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        if self._model is None:
            from transformers import SamModel, SamProcessor

            self._processor = SamProcessor.from_pretrained(self.model_id)
            model = SamModel.from_pretrained(self.model_id)
            self._model = model.to(resolve_device(self.device)).eval()

    def point_grid(self, width: int, height: int) -> np.ndarray:
        """``(P, 2)`` pixel ``(x, y)`` points at the centres of a ``points_per_side``² grid of cells."""
        n = self.points_per_side
        xs = (np.arange(n) + 0.5) * width / n
        ys = (np.arange(n) + 0.5) * height / n
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=-1)

    @torch.no_grad()
    def masks(self, image: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(P, H, W)`` boolean masks (best of three per grid point) and their ``(P,)`` predicted IoU."""
        self._load()
        image = as_rgb(image)
        width, height = image.size
        enc = self._processor(images=image, return_tensors="pt")
        device = self._model.device
        embeddings = self._model.get_image_embeddings(enc["pixel_values"].to(device))
        resized_h, resized_w = (int(v) for v in enc["reshaped_input_sizes"][0])
        points = self.point_grid(width, height) * np.array([resized_w / width, resized_h / height])
        all_masks, all_scores = [], []
        for start in range(0, len(points), self.points_per_batch):
            chunk = torch.tensor(points[start : start + self.points_per_batch], dtype=torch.float32, device=device)
            out = self._model(
                image_embeddings=embeddings,
                input_points=chunk[None, :, None, :],  # (1 image, P prompts, 1 point, xy)
                input_labels=torch.ones(1, len(chunk), 1, dtype=torch.long, device=device),
                multimask_output=True,
            )
            iou = out.iou_scores[0].float()  # (P, 3)
            best = iou.argmax(-1)
            low_res = out.pred_masks[0][torch.arange(len(chunk)), best][:, None]  # (P, 1, h, w)
            full = self._processor.image_processor.post_process_masks(
                [low_res.float().cpu()], enc["original_sizes"], enc["reshaped_input_sizes"]
            )[0][:, 0]
            all_masks.append(full.bool().numpy())
            all_scores.append(iou.gather(1, best[:, None])[:, 0].cpu().numpy())
        return np.concatenate(all_masks), np.concatenate(all_scores)

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        """Up to ``max_regions`` mask boxes, largest mask first (SRUM keeps the top 10)."""
        image = as_rgb(image)
        width, height = image.size
        masks, scores = self.masks(image)
        areas = masks.reshape(len(masks), -1).sum(-1)
        candidates = []
        for i in range(len(masks)):
            if scores[i] < self.iou_threshold or areas[i] < self.min_area * width * height:
                continue
            box = mask_to_box(masks[i])
            if box is not None:
                candidates.append((i, box))
        if not candidates:
            logger.info("SAM found no mask above IoU %.2f on a %dx%d image", self.iou_threshold, width, height)
            return []
        boxes = np.array([b for _, b in candidates], dtype=np.float64)
        keep = nms(boxes, np.array([scores[i] for i, _ in candidates]), self.nms_iou)
        kept = sorted((candidates[k] for k in keep), key=lambda c: -int(areas[c[0]]))
        return [
            Region(clamp_box(box, width, height), source=self.name, label=None, confidence=float(scores[i]))
            for i, box in kept[:max_regions]
        ]
